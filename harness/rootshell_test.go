package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh/sshtest"
)

// TestAsRootKeepsOneShell: the harness's reads as root (the after-test log checks) run in one
// kept `sudo -n sh` per connection, not a sudo each; a guest that refuses the kept shell gets a
// sudo per read, and is asked once per connection; a shell that ends is opened again.
func TestAsRootKeepsOneShell(t *testing.T) {
	// sudo is the host's sh here: `sudo -n sh -c X` runs sh -c X, `sudo -n sh` runs sh.
	// refuse makes the kept shell fail as sudo does for a user who needs a password.
	serve := func(t *testing.T, refuse bool) (*Machine, *sshtest.Server) {
		srv := sshtest.NewServer(t, func(cmd string) string {
			if refuse && cmd == RootShellCommand {
				return "echo 'sudo: a password is required' >&2; exit 1"
			}
			return strings.ReplaceAll(cmd, "sudo -n ", "")
		})
		var logs strings.Builder
		m := &Machine{name: "t", started: time.Now(), logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) },
			sshCfg: ssh.Config{Addr: srv.Addr, User: "u", Signer: srv.UserKey, HostKey: srv.HostKey.PublicKey()}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, m.dialSSH(ctx))
		t.Cleanup(m.dropClient)
		t.Cleanup(func() { t.Log(logs.String()) })
		return m, srv
	}
	read := func(t *testing.T, m *Machine, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			res, err := m.asRoot(context.Background(), "echo read $x; x=left-over; echo to-stderr >&2; exit 3")
			require.NoError(t, err, "read %d", i)
			assert.Equal(t, "read\n", string(res.Stdout), "read %d: its own output only, nothing the previous read set", i)
			assert.Equal(t, "to-stderr\n", string(res.Stderr), "read %d", i)
			assert.Equal(t, 3, res.ExitCode, "read %d", i)
		}
	}
	// count counts the server's commands that are cmd, or begin with it when prefix.
	count := func(srv *sshtest.Server, cmd string, prefix bool) (n int) {
		for _, c := range srv.Commands() {
			if c == cmd || prefix && strings.HasPrefix(c, cmd) {
				n++
			}
		}
		return n
	}

	t.Run("kept", func(t *testing.T) {
		m, srv := serve(t, false)
		read(t, m, 5)
		assert.Equal(t, []string{RootShellCommand}, srv.Commands(), "five reads, one session and one sudo")

		// A new connection (a reboot) gets a shell of its own.
		m.dropClient()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, m.dialSSH(ctx))
		read(t, m, 2)
		assert.Equal(t, []string{RootShellCommand, RootShellCommand}, srv.Commands())

		// A shell that ends under a test (it killed it) is opened again at the next read, and
		// the read it ended runs with a sudo of its own.
		once := t.TempDir() + "/killed"
		res, err := m.asRoot(context.Background(), "[ -e "+once+" ] || { touch "+once+"; kill $$; sleep 1; }; echo survived")
		require.NoError(t, err)
		assert.Equal(t, "survived\n", string(res.Stdout), "the read that lost the shell ran again with a sudo of its own")
		assert.Equal(t, 1, count(srv, GuestPATH+"sudo -n sh -c ", true), "%q", srv.Commands())
		read(t, m, 2)
		assert.Equal(t, 3, count(srv, RootShellCommand, false), "shells opened: %q", srv.Commands())
	})

	t.Run("refused", func(t *testing.T) {
		m, srv := serve(t, true)
		read(t, m, 4)
		assert.Equal(t, 1, count(srv, RootShellCommand, false), "the refused shell is asked for once per connection: %q", srv.Commands())
		assert.Equal(t, 4, count(srv, GuestPATH+"sudo -n sh -c ", true), "each read with a sudo of its own: %q", srv.Commands())
	})
}
