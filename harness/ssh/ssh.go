// Package ssh is the harness's SSH client: a pinned host key, one kept connection, one session
// per command, commands bound to the caller's context and never retried.
package ssh

import (
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
}

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
	_ = conn.SetDeadline(deadline)
	cc, chans, reqs, err := gossh.NewClientConn(conn, cfg.Addr, &gossh.ClientConfig{
		User:              cfg.User,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(cfg.Signer)},
		HostKeyCallback:   gossh.FixedHostKey(cfg.HostKey),
		HostKeyAlgorithms: []string{cfg.HostKey.Type()},
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &Client{cfg: cfg, c: gossh.NewClient(cc, chans, reqs)}, nil
}

// IsHostKeyMismatch reports whether err is the pinned-key check failing: the guest is not the
// one the harness configured (or its key was replaced). It is never retried.
func IsHostKeyMismatch(err error) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte("host key mismatch"))
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
	Duration       time.Duration
}

// ErrConnectionLost means the connection broke while the command ran: it may or may not have
// finished in the guest.
var ErrConnectionLost = errors.New("SSH connection lost before the command finished")

// Run runs cmd in a new session on the kept connection. A non-zero exit is not an error (see
// Result.ExitCode); an error means the command's outcome is unknown. On ctx's end the session
// gets SIGKILL and is closed; the guest process may survive (wrap long commands in timeout).
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	start := time.Now()
	sess, err := c.c.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("opening SSH session: %w", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if stdin != nil {
		sess.Stdin = stdin
	}
	if err := sess.Start(cmd); err != nil {
		return Result{}, fmt.Errorf("starting %q: %w", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(gossh.SIGKILL)
		_ = sess.Close()
		return Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: -1, Duration: time.Since(start)},
			fmt.Errorf("command %q: %w", cmd, ctx.Err())
	}
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), Duration: time.Since(start)}
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
