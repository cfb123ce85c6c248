package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/avc"
	"github.com/azl-vmtest/azl-vmtest/harness/console"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// Boot starts a machine owned by one test, waits until it is ready and stops it when the test
// ends. On failure (or always with VMTEST_KEEP=always) artifacts go to
// $VMTEST_ARTIFACTS/<test name>/. After the test, the console and the kernel log are checked
// against the console checks table.
func Boot(t testing.TB, opts ...Option) *Machine {
	t.Helper()
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatalf("harness configuration: %v", err)
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := bootContext(t, testContext(t))
	defer cancel()
	m, err := start(ctx, cfg, t.Name(), t.Logf)
	err = explainDeadline(ctx, err)
	if m != nil {
		m.owner = t
		// Cleanups run last-in first-out: checks, then artifacts, then stop.
		t.Cleanup(m.Close)
		t.Cleanup(func() {
			if cfg.Keep.artifacts(t.Failed()) {
				dst := m.artifactDir(t.Name())
				if err := m.saveArtifacts(dst); err != nil {
					t.Logf("artifacts: %s (incomplete: %v)", dst, err)
				} else {
					t.Logf("artifacts: %s", dst)
				}
			}
			if cfg.Keep == KeepVMOnFailure && t.Failed() {
				d, _ := deadline(t)
				m.hold(t.Name(), d)
			}
		})
	}
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	from := 0
	t.Cleanup(func() { m.checkConsole(t, from) })
	return m
}

// errTestTimeout is the cause of a boot context that ended at deadline(t).
var errTestTimeout = errors.New("go test's -timeout is a minute away (the boot stopped so the run can report and keep artifacts; raise -timeout)")

// bootContext is parent bounded by deadline(t), with errTestTimeout as the cause when that
// bound is what ends it.
func bootContext(t testing.TB, parent context.Context) (context.Context, context.CancelFunc) {
	if d, ok := deadline(t); ok {
		return context.WithDeadlineCause(parent, d, errTestTimeout)
	}
	return context.WithCancel(parent)
}

// explainDeadline adds which bound ran out to err when the test's deadline ended ctx.
func explainDeadline(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errTestTimeout) {
		return fmt.Errorf("%w: %w", err, errTestTimeout)
	}
	return err
}

// deadline leaves a minute before the test binary's own timeout for cleanup and artifacts.
func deadline(t testing.TB) (time.Time, bool) {
	tt, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}, false
	}
	d, ok := tt.Deadline()
	if !ok {
		return d, false
	}
	return d.Add(-time.Minute), true
}

// skipBootKernelLog makes the per-test kernel log checks start after what the guest has logged
// so far (its boot).
func (m *Machine) skipBootKernelLog() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, denials, err := m.guestLogs(ctx)
	if err != nil {
		return
	}
	if res.ExitCode == 0 {
		m.mu.Lock()
		m.dmesgSeen = len(console.SplitLines(string(res.Stdout)))
		m.mu.Unlock()
	}
	m.skipBootDenials(denials)
}

// guestLogs reads the kernel log and, when the profile says SELinux is on, the denial records
// (as avc.Command prints them), with one command run as root in the kept root shell (asRoot):
// the after-test checks cost one round trip and, under TCG, a few hundredths of a second of the
// guest's CPU rather than the half second of a sudo.
func (m *Machine) guestLogs(ctx context.Context) (dmesg ssh.Result, denials *ssh.Result, err error) {
	if !m.selinuxOn() {
		dmesg, err = m.asRoot(ctx, "dmesg")
		return dmesg, nil, err
	}
	res, err := m.asRoot(ctx, avc.LogsScript)
	if err != nil {
		return ssh.Result{}, nil, err
	}
	kernel, records, ok := avc.SplitLogs(string(res.Stdout))
	if !ok && res.ExitCode == 0 {
		res.ExitCode = -1 // not what LogsScript prints: judged as unreadable
	}
	dmesg, d := res, res
	dmesg.Stdout, d.Stdout = []byte(kernel), []byte(records)
	return dmesg, &d, nil
}

// checkConsole fails t if console lines after `from`, or kernel log lines the guest logged since
// the last check, match the console checks (quiet kernels print warnings to the log only), or
// if the guest logged SELinux denials the test did not expect (checkDenials).
func (m *Machine) checkConsole(t testing.TB, from int) {
	t.Helper()
	expected := m.takeExpected()
	if hits := console.Scan(m.consoleLines(from), console.Checks, m.cfg.AllowConsole...); len(hits) > 0 {
		t.Error(console.Report("serial console", hits, 20))
	}
	if m.Dead() != nil || m.sshClient() == nil {
		return
	}
	if err := m.wake(); err != nil { // before the read's timeout starts
		t.Errorf("the after-test check of the guest's logs: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, denials, err := m.guestLogs(ctx)
	if err != nil || res.ExitCode != 0 {
		return
	}
	lines := console.SplitLines(string(res.Stdout))
	m.mu.Lock()
	seen := m.dmesgSeen
	if seen > len(lines) { // ring buffer wrapped or a reboot: check all
		seen = 0
	}
	m.dmesgSeen = len(lines)
	m.mu.Unlock()
	if hits := console.Scan(lines[seen:], console.Checks, m.cfg.AllowConsole...); len(hits) > 0 {
		t.Error(console.Report("kernel log (dmesg)", hits, 20))
	}
	m.checkDenials(t, denials, expected)
}

// Start boots a machine outside a test's lifetime (tools, benchmarks, self-tests that expect
// a failure). The configuration comes from the environment and opts; the caller must Close the
// machine. On error nothing is left running.
func Start(ctx context.Context, name string, logf func(string, ...any), opts ...Option) (*Machine, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := start(ctx, cfg, name, logf)
	if err != nil {
		if m != nil {
			m.Close()
		}
		return nil, err
	}
	return m, nil
}
