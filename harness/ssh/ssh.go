// Package ssh is the harness's SSH client: a pinned host key, one kept connection, one session
// per command, commands bound to the caller's context and never retried.
package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Config is how to reach a guest.
type Config struct {
	Addr    string // host:port
	User    string
	Signer  gossh.Signer
	HostKey gossh.PublicKey // pinned: any other key fails the handshake
	// HandshakeTimeout bounds one connection attempt (TCP + SSH handshake); default 10 s.
	HandshakeTimeout time.Duration
	// BannerTimeout, if set, bounds the wait for the server's first bytes. QEMU's user-net
	// accepts a connection on the host while the guest has no network yet and then says
	// nothing; a short banner wait turns that into a fast retry instead of a long stall.
	BannerTimeout time.Duration
	// Answered, if set, is called (in Dial's goroutine) once the server has sent its first
	// bytes: an SSH server is working on this connection, and the rest is the handshake.
	Answered func()
}

// ErrNoBanner means the TCP connection was accepted but no SSH server answered in time.
var ErrNoBanner = errors.New("no SSH banner")

// bufferedConn replays what was peeked before the SSH library reads.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Client is one kept SSH connection.
type Client struct {
	cfg Config
	c   *gossh.Client
}

// Dial makes one connection attempt. QEMU's user-net accepts TCP before the guest listens, so
// the whole handshake runs under a deadline (ClientConfig.Timeout covers only connect).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	timeout := cfg.HandshakeTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	// A cancelled ctx ends the attempt at any step: the handshake itself is bound only by the
	// connection's deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*Client, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("SSH attempt abandoned: %w (%v)", context.Cause(ctx), err)
		}
		return nil, err
	}
	var sconn net.Conn = conn
	if cfg.BannerTimeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(cfg.BannerTimeout))
		br := bufio.NewReader(conn)
		if _, err := br.Peek(4); err != nil {
			return fail(fmt.Errorf("%w within %s: %v", ErrNoBanner, cfg.BannerTimeout, err))
		}
		sconn = bufferedConn{conn, br}
		if cfg.Answered != nil {
			cfg.Answered()
		}
	}
	_ = conn.SetDeadline(deadline)
	cc, chans, reqs, err := gossh.NewClientConn(sconn, cfg.Addr, &gossh.ClientConfig{
		User:              cfg.User,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(cfg.Signer)},
		HostKeyCallback:   gossh.FixedHostKey(cfg.HostKey),
		HostKeyAlgorithms: []string{cfg.HostKey.Type()},
	})
	if err != nil {
		return fail(err)
	}
	if !stop() { // ctx ended as the handshake did: the connection is closed already
		return fail(errors.New("connection closed"))
	}
	_ = conn.SetDeadline(time.Time{})
	return &Client{cfg: cfg, c: gossh.NewClient(cc, chans, reqs)}, nil
}

// IsHostKeyMismatch reports whether err is the pinned-key check failing: the guest is not the
// one the harness configured (or its key was replaced), or it has no key of the pinned key's
// type at all. It is never retried.
func IsHostKeyMismatch(err error) bool {
	return err != nil && (bytes.Contains([]byte(err.Error()), []byte("host key mismatch")) ||
		bytes.Contains([]byte(err.Error()), []byte("no common algorithm for host key")))
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
	Duration       time.Duration
	// Truncated: the command wrote more than MaxOutput to stdout or stderr; the first
	// MaxOutput bytes of each are kept, the rest was read and dropped.
	Truncated bool
}

// MaxOutput bounds what is kept of a command's stdout and of its stderr.
const MaxOutput = 64 << 20

// ErrConnectionLost means the connection broke while the command ran: it may or may not have
// finished in the guest.
var ErrConnectionLost = errors.New("SSH connection lost before the command finished")

// Run runs cmd in a new session on the kept connection. A non-zero exit is not an error (see
// Result.ExitCode); an error means the command's outcome is unknown. Every step, opening the
// session included, is bound to ctx: when it ends the session gets SIGKILL and is closed in the
// background (a dead guest never answers, so nothing waits for it). The guest process may
// survive: wrap long commands in timeout(1).
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	start := time.Now()
	type outcome struct {
		err   error
		setup bool // the session could not be opened or started
	}
	done := make(chan outcome, 1)
	sessCh := make(chan *gossh.Session, 1)
	var out, errb syncBuffer
	go func() {
		sess, err := c.c.NewSession()
		if err != nil {
			done <- outcome{err: fmt.Errorf("opening SSH session: %w", err), setup: true}
			return
		}
		sessCh <- sess
		defer sess.Close()
		sess.Stdout, sess.Stderr = &out, &errb
		if stdin != nil {
			sess.Stdin = stdin
		}
		if err := sess.Start(cmd); err != nil {
			done <- outcome{err: fmt.Errorf("starting %q: %w", cmd, err), setup: true}
			return
		}
		done <- outcome{err: sess.Wait()}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		go func() {
			select {
			case sess := <-sessCh:
				_ = sess.Signal(gossh.SIGKILL)
				_ = sess.Close()
			case <-done:
			}
		}()
		return Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: -1, Duration: time.Since(start), Truncated: out.dropped() || errb.dropped()},
			fmt.Errorf("command %q: %w", cmd, ctx.Err())
	}
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), Duration: time.Since(start), Truncated: out.dropped() || errb.dropped()}
	if o.setup {
		res.ExitCode = -1
		return res, o.err
	}
	err := o.err
	var ee *gossh.ExitError
	var missing *gossh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			res.ExitCode = -1
		}
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		res.ExitCode = -1
		return res, fmt.Errorf("command %q: %w", cmd, ErrConnectionLost)
	default:
		res.ExitCode = -1
		return res, fmt.Errorf("command %q: %w", cmd, err)
	}
	return res, nil
}

// Alive sends a keepalive and waits for the answer.
func (c *Client) Alive(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.c.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Raw is the underlying connection (for scp).
func (c *Client) Raw() *gossh.Client { return c.c }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// SessionSetupTime opens and closes one session without running anything: the channel's cost
// alone, to set against Run's (which adds the exec request and the guest's fork of a shell).
func (c *Client) SessionSetupTime(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		s, err := c.c.NewSession()
		if err == nil {
			err = s.Close()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
