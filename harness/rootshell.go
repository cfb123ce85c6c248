package harness

import (
	"context"
	"errors"
	"sync"

	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// RootShellCommand is the shell the harness keeps open on each connection for what it runs as
// root itself (a restored guest's refresh, the read of the guest's logs when it is ready and
// after every test): one sudo per connection instead of one per read. Under TCG a session and
// its sudo cost about half a second of host CPU (measured 2026-12-03 on a restored x86-64
// stand-in: 0.48-0.51 s a `sudo -n dmesg`, 0.11 s a dmesg in the kept shell). The shell takes
// one of the connection's sshd sessions (MaxSessions) while it is open; it shows in the guest
// as a `sudo -n sh` of the test user, child of that user's sshd session.
const RootShellCommand = "sudo -n sh"

// rootShell is the kept root shell and the connection it runs on. Its lock is never held while
// the guest is waited for: dropping the connection or closing the machine never waits on it.
type rootShell struct {
	mu      sync.Mutex
	sh      *ssh.Shell
	on      *ssh.Client // the connection sh runs on
	refused *ssh.Client // the connection on which a new shell failed its first batch
	fresh   bool        // sh has not yet run a batch
	opening bool        // a shell is being opened (others use a sudo of their own meanwhile)
	gen     int         // counts closeRootShell calls: a shell opened across one is closed
}

// asRoot runs script (a POSIX shell script) as root: in the kept root shell when the guest lets
// the test user keep one, else with a sudo of its own (`sudo -n sh -c`). The result is the
// script's; an error means its outcome is unknown, as for Run. A batch that fails in the shell
// is run again with a sudo of its own: script must be safe to run twice (reads, and writes
// that set a value).
func (m *Machine) asRoot(ctx context.Context, script string) (ssh.Result, error) {
	if err := m.wake(); err != nil { // before the shell's sudo
		return ssh.Result{ExitCode: -1}, err
	}
	if sh := m.openRootShell(ctx); sh != nil {
		gctx, cancel := m.guard(ctx)
		res, err := sh.RunAll(gctx, GuestPATH, []string{script})
		cancel()
		if err == nil {
			m.root.mu.Lock()
			if m.root.sh == sh {
				m.root.fresh = false
			}
			m.root.mu.Unlock()
			return res[0], nil
		}
		m.rootShellFailed(sh, err)
	}
	return m.Run(ctx, "sudo -n sh -c "+qemu.ShellQuote(script))
}

// openRootShell returns the kept root shell on the current connection, opening it if need be;
// nil when there is no connection, the guest refused one on it, or another caller is opening it.
func (m *Machine) openRootShell(ctx context.Context) *ssh.Shell {
	if m.Dead() != nil {
		return nil
	}
	c := m.sshClient()
	if c == nil {
		return nil
	}
	r := &m.root
	r.mu.Lock()
	if r.on == c && r.sh != nil {
		defer r.mu.Unlock()
		return r.sh
	}
	if r.refused == c || r.opening {
		r.mu.Unlock()
		return nil
	}
	if r.sh != nil { // opened on a connection since dropped
		r.sh.Close()
		r.sh, r.on = nil, nil
	}
	r.opening = true
	gen := r.gen
	r.mu.Unlock()

	sh, err := c.Shell(ctx, RootShellCommand)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opening = false
	if err != nil {
		return nil // no session now: the sudo of its own tells the rest
	}
	if r.gen != gen { // the connection was dropped meanwhile
		sh.Close()
		return nil
	}
	r.sh, r.on, r.fresh = sh, c, true
	return sh
}

// rootShellFailed closes a shell whose batch failed. A shell that ends in its first batch on a
// connection still up is refused on it (no sudo without a password, a sudo that insists on a
// terminal, ...): the harness says so once and uses a sudo per read from then on. Any other
// (one that had worked and was killed, a batch that ran out of time) is opened again at the
// next read.
func (m *Machine) rootShellFailed(sh *ssh.Shell, err error) {
	r := &m.root
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sh != sh {
		return
	}
	sh.Close()
	if r.fresh && errors.Is(err, ssh.ErrShellEnded) && m.Dead() == nil && r.on == m.sshClient() {
		r.refused = r.on
		m.log("vm %s: %s did not run a batch (%v): each read of the guest's logs uses a sudo of its own", m.name, RootShellCommand, err)
	}
	r.sh, r.on = nil, nil
}

// closeRootShell ends the kept root shell, if any (before its connection is dropped).
func (m *Machine) closeRootShell() {
	r := &m.root
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	if r.sh != nil {
		r.sh.Close()
	}
	r.sh, r.on = nil, nil
}
