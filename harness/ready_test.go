package harness

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh/sshtest"
)

// slowHandshake delays the first read of a server connection: the server's banner goes out at
// once, the handshake waits, as sshd's does on a busy TCG guest.
type slowHandshake struct {
	net.Conn
	delay time.Duration
	once  atomic.Bool
}

func (c *slowHandshake) Read(p []byte) (int, error) {
	if c.once.CompareAndSwap(false, true) {
		time.Sleep(c.delay)
	}
	return c.Conn.Read(p)
}

// TestDialSSHDoesNotJoinAnAnsweringServer: an attempt that has heard sshd's banner goes on alone,
// no companion joins it and those already there are closed (each would be one more handshake and
// login for the guest to run), while a server that accepts and says nothing still gets
// companions (user-net before the guest's network).
func TestDialSSHDoesNotJoinAnAnsweringServer(t *testing.T) {
	host, user := sshtest.NewSigner(t), sshtest.NewSigner(t)
	// serve runs an SSH server. silentFirst: the first connection never hears anything (user-net
	// before the guest's network). holdUntil > 0: every connection waits that long (from the
	// server's start) before the server answers it, as user-net holds them until sshd listens.
	// conns counts connections, logins counts key checks (handshakes that got as far as logging in).
	serve := func(t *testing.T, handshakeDelay time.Duration, silentFirst bool, holdUntil time.Duration) (addr string, conns, logins *atomic.Int32) {
		conns, logins = new(atomic.Int32), new(atomic.Int32)
		cfg := &gossh.ServerConfig{PublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) {
			logins.Add(1)
			return nil, nil
		}}
		cfg.AddHostKey(host)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		start := time.Now()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
				if conns.Add(1) == 1 && silentFirst {
					continue // the first connection hears nothing, ever
				}
				go func() {
					time.Sleep(time.Until(start.Add(holdUntil)))
					sc, chans, reqs, err := gossh.NewServerConn(&slowHandshake{Conn: c, delay: handshakeDelay}, cfg)
					if err != nil {
						return
					}
					t.Cleanup(func() { sc.Close() })
					go gossh.DiscardRequests(reqs)
					for nc := range chans {
						nc.Reject(gossh.Prohibited, "no sessions here")
					}
				}()
			}
		}()
		return l.Addr().String(), conns, logins
	}
	dial := func(t *testing.T, addr string) time.Duration {
		m := &Machine{name: "t", started: time.Now(), logf: t.Logf,
			sshCfg: ssh.Config{Addr: addr, User: "u", Signer: user, HostKey: host.PublicKey()}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		require.NoError(t, m.dialSSH(ctx))
		m.dropClient()
		return time.Since(start)
	}

	t.Run("answering server, slow handshake", func(t *testing.T) {
		addr, conns, logins := serve(t, 2500*time.Millisecond, false, 0)
		took := dial(t, addr)
		assert.GreaterOrEqual(t, took, 2500*time.Millisecond)
		assert.Equal(t, int32(1), conns.Load(), "connections the guest's sshd had to handle while one handshake was under way (expected 1)")
		assert.Equal(t, int32(1), logins.Load(), "logins")
	})
	t.Run("held connections answered together", func(t *testing.T) {
		// Three attempts wait (the second and third join after SSHStagger each), then sshd
		// answers all three at once: one handshake goes on, the other two are closed before
		// their logins.
		addr, conns, logins := serve(t, 500*time.Millisecond, false, 2*SSHStagger+500*time.Millisecond)
		dial(t, addr)
		assert.Equal(t, int32(SSHMaxAttempts), conns.Load(), "attempts that joined the held one")
		time.Sleep(time.Second) // a companion left running would log in by now
		assert.Equal(t, int32(1), logins.Load(), "logins the guest ran for one connection the harness keeps (expected 1)")
	})
	t.Run("silent first connection", func(t *testing.T) {
		addr, conns, _ := serve(t, 0, true, 0)
		took := dial(t, addr)
		assert.Less(t, took, SSHBannerWait, "a silent connection must not hold up the login")
		assert.Equal(t, int32(2), conns.Load(), "a second attempt joins the silent one after %s", SSHStagger)
	})
}

// TestRestoredStagesNameTheFirstCommand: a restored machine's stages say when its first command
// answered, between the handshake and ready, in its log line and in the timeline's marks.
func TestRestoredStagesNameTheFirstCommand(t *testing.T) {
	b := BootStages{QEMU: 100 * time.Millisecond, Restore: 600 * time.Millisecond, SSH: 1800 * time.Millisecond,
		FirstCommand: 2600 * time.Millisecond, Ready: 3300 * time.Millisecond}
	assert.Equal(t, "qemu 0.1s, restored 0.6s, ssh 1.8s, first command 2.6s, ready 3.3s", b.String())
	marks := b.Marks()
	var names []string
	for i, mk := range marks {
		names = append(names, mk.Name)
		if i > 0 {
			assert.GreaterOrEqual(t, mk.At, marks[i-1].At, "marks in order")
		}
	}
	assert.Equal(t, []string{"QEMU up", "state restored", "SSH", "first command", "ready"}, names)
}
