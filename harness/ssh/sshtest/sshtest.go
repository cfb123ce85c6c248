// Package sshtest is an in-process SSH server for tests of code that runs commands over SSH:
// it runs each exec request under the host's sh, as sshd runs it under the user's shell.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os/exec"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// Server is a running test server.
type Server struct {
	Addr    string
	HostKey gossh.Signer // the server's key: pin its public half
	UserKey gossh.Signer // the only key it accepts

	mu       sync.Mutex
	commands []string // the exec requests' commands, in order
}

// Commands returns the exec requests' commands so far, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// NewServer starts a server that runs each exec request as `sh -c (rewrite(command))`, with the
// channel as its stdin, stdout and stderr and its exit status sent back; rewrite may be nil. It
// stops when the test ends.
func NewServer(t testing.TB, rewrite func(cmd string) string) *Server {
	s := &Server{HostKey: NewSigner(t), UserKey: NewSigner(t)}
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(_ gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
		if string(k.Marshal()) == string(s.UserKey.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(s.HostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go s.serve(conn, cfg, rewrite)
		}
	}()
	return s
}

func (s *Server) serve(conn net.Conn, cfg *gossh.ServerConfig, rewrite func(string) string) {
	_, chans, reqs, err := gossh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	for nc := range chans {
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(r.Type == "signal", nil)
					continue
				}
				cmd := string(r.Payload[4:])
				s.mu.Lock()
				s.commands = append(s.commands, cmd)
				s.mu.Unlock()
				if rewrite != nil {
					cmd = rewrite(cmd)
				}
				r.Reply(true, nil)
				go run(ch, cmd)
			}
		}()
	}
}

func run(ch gossh.Channel, cmd string) {
	c := exec.Command("sh", "-c", cmd)
	c.Stdout, c.Stderr = ch, ch.Stderr()
	// A pipe, not the channel itself: Wait must not wait for the client to close stdin once
	// the command has ended (sshd does not).
	stdin, _ := c.StdinPipe()
	go func() { io.Copy(stdin, ch); stdin.Close() }()
	code := 0
	if err := c.Run(); err != nil {
		code = 255
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	status := []byte{byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)}
	ch.SendRequest("exit-status", false, status)
	ch.Close()
}

// NewSigner is a fresh Ed25519 key, for a server's host key or a client's user key.
func NewSigner(t testing.TB) gossh.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
