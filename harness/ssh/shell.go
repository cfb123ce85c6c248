package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	gossh "golang.org/x/crypto/ssh"
)

// Shell is a shell kept running in one session (for instance `sudo -n sh`) that runs batches
// of commands written to its stdin, framed as RunAll frames them. A batch costs the guest a
// subshell per command and nothing else: no session, no fork of sshd's session process and,
// for `sudo -n sh`, no PAM stack and sudo log record (measured under TCG: 0.3-0.5 s of guest
// CPU for each sudo). A batch that does not finish cleanly (its context ends, the shell exits,
// the output does not parse) leaves the shell unusable: it is closed and the error says why;
// open another, or run the commands another way. The shell takes one of the connection's
// sessions (sshd's MaxSessions) for as long as it is open.
type Shell struct {
	cmd  string
	sess *gossh.Session
	in   io.WriteCloser
	out  *syncBuffer
	errb *syncBuffer
	// exited is closed when the session ends; err is then how.
	exited chan struct{}
	err    error

	mu        sync.Mutex // one batch at a time
	broken    error      // why the shell is unusable; nil while it is usable
	closed    atomic.Bool
	closeOnce sync.Once
}

// Shell starts cmd (a shell reading its commands from stdin) in a new session on the kept
// connection. Opening the session is bound to ctx; the shell then lives until Close, the
// connection's end, or a batch that fails.
func (c *Client) Shell(ctx context.Context, cmd string) (*Shell, error) {
	type opened struct {
		sess *gossh.Session
		err  error
	}
	ch := make(chan opened, 1)
	go func() {
		sess, err := c.c.NewSession()
		ch <- opened{sess, err}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.sess != nil {
				o.sess.Close()
			}
		}()
		return nil, fmt.Errorf("opening SSH session for %q: %w", cmd, ctx.Err())
	}
	if o.err != nil {
		return nil, fmt.Errorf("opening SSH session for %q: %w", cmd, o.err)
	}
	s := &Shell{cmd: cmd, sess: o.sess, out: new(syncBuffer), errb: new(syncBuffer), exited: make(chan struct{})}
	s.sess.Stdout, s.sess.Stderr = s.out, s.errb
	in, err := s.sess.StdinPipe()
	if err != nil {
		s.sess.Close()
		return nil, fmt.Errorf("stdin of %q: %w", cmd, err)
	}
	s.in = in
	if err := s.sess.Start(cmd); err != nil {
		s.sess.Close()
		return nil, fmt.Errorf("starting %q: %w", cmd, err)
	}
	go func() {
		s.err = s.sess.Wait()
		close(s.exited)
	}()
	return s, nil
}

// RunAll runs cmds in the shell, each in its own subshell with stdin closed and prefix before
// it, and returns each one's stdout, stderr and exit code (as Client.RunAll does). An error
// means the batch's outcome is unknown and the shell is closed.
func (s *Shell) RunAll(ctx context.Context, prefix string, cmds []string) ([]Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, s.broken
	}
	if s.closed.Load() {
		s.broken = fmt.Errorf("shell %q: closed", s.cmd)
		return nil, s.broken
	}
	res, err := s.runAll(ctx, prefix, cmds)
	if err != nil {
		if s.closed.Load() {
			err = fmt.Errorf("closed during the batch (%w)", err)
		}
		s.broken = fmt.Errorf("shell %q: %w", s.cmd, err)
		s.close()
		return nil, s.broken
	}
	return res, nil
}

func (s *Shell) runAll(ctx context.Context, prefix string, cmds []string) ([]Result, error) {
	token := newToken()
	last := len(cmds) - 1
	outEnd := []byte(fmt.Sprintf("\n%s E %d ", token, last))
	errEnd := []byte(fmt.Sprintf("\n%s E %d\n", token, last))
	s.out.reset()
	s.errb.reset()
	if _, err := io.WriteString(s.in, BatchScript(prefix, cmds, token)); err != nil {
		return nil, s.ended(fmt.Errorf("writing the batch: %w", err))
	}
	finished := func() bool {
		return s.out.endsWith(func(tail []byte) bool { return endsWithCode(tail, outEnd) }) &&
			s.errb.endsWith(func(tail []byte) bool { return bytes.HasSuffix(tail, errEnd) })
	}
	for {
		outCh, errCh := s.out.next(), s.errb.next()
		if s.out.dropped() || s.errb.dropped() {
			return nil, fmt.Errorf("a batch's output passed %d bytes", MaxOutput)
		}
		if finished() {
			return ParseBatch(s.out.Bytes(), s.errb.Bytes(), token, len(cmds))
		}
		select {
		case <-outCh:
		case <-errCh:
		case <-s.exited:
			if finished() { // it wrote the whole batch's output before it ended
				return ParseBatch(s.out.Bytes(), s.errb.Bytes(), token, len(cmds))
			}
			return nil, s.ended(nil)
		case <-ctx.Done():
			return nil, fmt.Errorf("batch unfinished: %w", ctx.Err())
		}
	}
}

// endsWithCode reports whether b ends with prefix, an exit code and a newline.
func endsWithCode(b, prefix []byte) bool {
	if !bytes.HasSuffix(b, []byte("\n")) {
		return false
	}
	at := bytes.LastIndex(b, prefix)
	if at < 0 {
		return false
	}
	_, err := strconv.Atoi(string(b[at+len(prefix) : len(b)-1]))
	return err == nil
}

// ended says how the shell ended, with what it last wrote to stderr (`sudo -n` says there why
// it refused); failed is what failed first, reported as it is while the shell still runs.
func (s *Shell) ended(failed error) error {
	select {
	case <-s.exited:
	default:
		return failed
	}
	how := ""
	var ee *gossh.ExitError
	switch {
	case s.err == nil:
		how = " (exit 0)"
	case errors.As(s.err, &ee):
		how = fmt.Sprintf(" (exit %d)", ee.ExitStatus())
	default:
		how = fmt.Sprintf(" (%v)", s.err)
	}
	if e := bytes.TrimSpace(s.errb.Bytes()); len(e) > 0 {
		how += ": " + string(head(e))
	}
	return fmt.Errorf("%w%s", ErrShellEnded, how)
}

// ErrShellEnded means the kept shell's session ended before its batch was done: the shell
// exited (`sudo -n` refused, a command killed it) or the connection was lost.
var ErrShellEnded = errors.New("the shell ended")

// Close ends the shell's session (sshd then ends the shell). It does not wait for a batch under
// way, which then fails.
func (s *Shell) Close() {
	s.closed.Store(true)
	s.endSession()
}

// close ends the shell between batches (s.mu held): its stdin first, so it exits as a shell
// does at the end of its input, then its session. Only a batch writes to stdin, so only a
// holder of s.mu closes it (x/crypto/ssh's channel must not be written and closed for writing
// at once).
func (s *Shell) close() {
	_ = s.in.Close()
	s.endSession()
}

func (s *Shell) endSession() {
	s.closeOnce.Do(func() {
		_ = s.sess.Signal(gossh.SIGKILL)
		_ = s.sess.Close()
	})
}

// syncBuffer is a bytes.Buffer safe to read while a session writes to it. It keeps the first
// MaxOutput bytes written to it and counts the rest (a guest that floods its output must not
// exhaust the host's memory), tells a waiter of each write (a kept shell's batch ends with a
// marker, not with the session), and can be emptied between batches.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	extra   int64
	written chan struct{} // closed and replaced by each write; nil until asked for
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := p
	if room := MaxOutput - s.b.Len(); len(keep) > room {
		s.extra += int64(len(keep) - room)
		keep = keep[:room]
	}
	s.b.Write(keep)
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return len(p), nil
}

// next is closed by the next write.
func (s *syncBuffer) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = make(chan struct{})
	}
	return s.written
}

// endsWith applies f to the last bytes written (enough to hold an end marker).
func (s *syncBuffer) endsWith(f func(tail []byte) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > 256 {
		b = b[len(b)-256:]
	}
	return f(b)
}

func (s *syncBuffer) dropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.extra > 0
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

func (s *syncBuffer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
	s.extra = 0
}
