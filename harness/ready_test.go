package harness

import (
	"context"
	"fmt"
	"net"
	"strings"
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
	// login: a new machine logs in to addr once (or again with login(t, addr, m)); how long
	// that took. The connection is closed again.
	login := func(t *testing.T, addr string, m *Machine) (*Machine, time.Duration) {
		if m == nil {
			m = &Machine{name: "t", started: time.Now(), logf: t.Logf,
				sshCfg: ssh.Config{Addr: addr, User: "u", Signer: user, HostKey: host.PublicKey()}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, m.dialSSH(ctx))
		took := time.Since(m.started)
		m.dropClient()
		return m, took
	}
	dial := func(t *testing.T, addr string) time.Duration {
		_, took := login(t, addr, nil)
		return took
	}

	t.Run("answering server, slow handshake", func(t *testing.T) {
		addr, conns, logins := serve(t, 2500*time.Millisecond, false, 0)
		m, took := login(t, addr, nil)
		st := m.Stages
		assert.GreaterOrEqual(t, took, 2500*time.Millisecond)
		// The stages say where the time went: the banner came at once, the handshake took it.
		assert.Less(t, st.SSHAttempt, 100*time.Millisecond, "the first attempt opened the connection that logged in")
		assert.Positive(t, st.Banner, "the banner's time was recorded")
		assert.Less(t, st.Banner, time.Second, "the banner came before the slow handshake")
		assert.GreaterOrEqual(t, took-st.Banner, 2500*time.Millisecond, "from the banner to the login: the handshake")
		assert.Equal(t, int32(1), conns.Load(), "connections the guest's sshd had to handle while one handshake was under way (expected 1)")
		assert.Equal(t, int32(1), logins.Load(), "logins")
	})
	t.Run("held connections answered together", func(t *testing.T) {
		// Three attempts wait (the second and third join after SSHStagger each), then sshd
		// answers all three at once: one handshake goes on, the other two are closed before
		// their logins.
		addr, conns, logins := serve(t, 500*time.Millisecond, false, 2*SSHStagger+500*time.Millisecond)
		m, _ := login(t, addr, nil)
		st := m.Stages
		assert.Greater(t, st.Banner, 2*SSHStagger, "the banner came when sshd answered the held connections")
		assert.LessOrEqual(t, st.SSHAttempt, st.Banner, "the connection that logged in was opened before its banner")
		assert.Equal(t, int32(SSHMaxAttempts), conns.Load(), "attempts that joined the held one")
		time.Sleep(time.Second) // a companion left running would log in by now
		assert.Equal(t, int32(1), logins.Load(), "logins the guest ran for one connection the harness keeps (expected 1)")
	})
	t.Run("a reconnection keeps the first login's stages", func(t *testing.T) {
		addr, _, _ := serve(t, 0, false, 0)
		m, _ := login(t, addr, nil)
		first := m.Stages
		require.Positive(t, first.Banner)
		time.Sleep(200 * time.Millisecond)
		login(t, addr, m) // as after a reboot, or the saving boot's reconnection
		assert.Equal(t, first.SSHAttempt, m.Stages.SSHAttempt)
		assert.Equal(t, first.Banner, m.Stages.Banner)
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
	b := BootStages{QEMU: 100 * time.Millisecond, Restore: 600 * time.Millisecond, SSHAttempt: 600 * time.Millisecond,
		Banner: 1100 * time.Millisecond, SSH: 1800 * time.Millisecond, FirstCommand: 2600 * time.Millisecond, Ready: 3300 * time.Millisecond}
	assert.Equal(t, "qemu 0.1s, restored 0.6s, banner 1.1s, ssh 1.8s, first command 2.6s, ready 3.3s", b.String())
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

// TestGapPartsAddUpToTheGap: the readiness gap splits into the harness opening the connection
// that logged in, sshd's banner on it and the handshake, whether the connection was opened
// after sshd became active or was already waiting (held by user-net) when it did; and a boot
// whose sshd time is unknown has no parts.
func TestGapPartsAddUpToTheGap(t *testing.T) {
	s := time.Second
	opened := BootStages{SSHDActive: 50 * s, SSHAttempt: 50*s + 200*time.Millisecond, Banner: 51 * s, SSH: 53 * s}
	opened.ReadinessGap = opened.SSH - opened.SSHDActive
	notice, answer, handshake, ok := opened.GapParts()
	require.True(t, ok)
	assert.Equal(t, []time.Duration{200 * time.Millisecond, 800 * time.Millisecond, 2 * s}, []time.Duration{notice, answer, handshake})
	assert.Equal(t, opened.ReadinessGap, notice+answer+handshake)
	assert.Contains(t, opened.String(), "ssh 53.0s (gap 3.00s: connection opened 0.20s, banner 0.80s, handshake 2.00s)")

	held := BootStages{SSHDActive: 50 * s, SSHAttempt: 48 * s, Banner: 50*s + 500*time.Millisecond, SSH: 52 * s}
	held.ReadinessGap = held.SSH - held.SSHDActive
	notice, answer, handshake, ok = held.GapParts()
	require.True(t, ok)
	assert.Equal(t, []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond}, []time.Duration{notice, answer, handshake})
	assert.Equal(t, held.ReadinessGap, notice+answer+handshake)

	unknown := BootStages{Banner: 50 * s, SSH: 52 * s}
	_, _, _, ok = unknown.GapParts()
	assert.False(t, ok, "no sshd time, no parts")
	assert.Contains(t, unknown.String(), "(gap 0.00s)")
}

// TestGuestTimesNotSkewedByASlowFirstCommand: a login's first command can wait seconds for the
// guest's user service manager; the kernel's start and sshd's activation, derived from the
// guest's clocks, must not move by half that wait. The fake guest's kernel started 3 s after
// the machine, its sshd 50 s after that, and its first command waits 2 s before answering.
func TestGuestTimesNotSkewedByASlowFirstCommand(t *testing.T) {
	started := time.Now()
	kernel := started.Add(3 * time.Second)
	// uptime prints the fake guest's uptime when the command gets there, as /proc/uptime does.
	uptime := fmt.Sprintf(`t=$(date +%%s.%%N); awk -v t="$t" -v b=%.3f 'BEGIN { printf "%%.2f 0.00\n", t - b }'`,
		float64(kernel.UnixMilli())/1000)
	var answered atomic.Bool
	srv := sshtest.NewServer(t, func(cmd string) string {
		script := ""
		if !answered.Swap(true) {
			script = "sleep 2; "
		}
		if strings.Contains(cmd, "cat /proc/uptime") {
			script += uptime + "; "
		}
		if strings.Contains(cmd, "ActiveEnterTimestampMonotonic") {
			script += "echo 50000000; "
		}
		return script + "true"
	})
	m := &Machine{name: "t", started: started, logf: t.Logf,
		sshCfg: ssh.Config{Addr: srv.Addr, User: "u", Signer: srv.UserKey, HostKey: srv.HostKey.PublicKey()}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, m.dialSSH(ctx))
	t.Cleanup(m.dropClient)
	m.Stages.SSH = time.Since(started)
	m.guestTimes(ctx)
	assert.InDelta(t, 3.0, m.Stages.Kernel.Seconds(), 0.25, "kernel start (s after QEMU's)")
	assert.InDelta(t, 53.0, m.Stages.SSHDActive.Seconds(), 0.25, "sshd active (s after QEMU's)")
}
