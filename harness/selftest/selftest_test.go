// Package selftest proves that the harness works and that it detects failure: each test boots
// the stand-in (or feeds the harness bad input) and checks what the harness reports.
package selftest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// TestBootRunCopyReboot starts the stand-in (restored from its saved state), runs commands,
// copies files both ways, reboots for real (new boot ID, the restored disk survives), and
// checks the base image was not written.
func TestBootRunCopyReboot(t *testing.T) {
	cfg, err := harness.ConfigFromEnv()
	require.NoError(t, err)
	before := sha256File(t, cfg.Image)

	m := harness.Boot(t)
	t.Logf("boot stages: %s", m.Stages)
	assert.Equal(t, m.User(), m.MustRun(t, "id -un"))
	out, code := m.Output(t, "echo out; echo err >&2; exit 7")
	assert.Equal(t, "out", out)
	assert.Equal(t, 7, code)

	local := filepath.Join(t.TempDir(), "payload")
	payload := strings.Repeat("azl-vmtest\n", 100000)
	require.NoError(t, os.WriteFile(local, []byte(payload), 0o644))
	ctx := t.Context()
	require.NoError(t, m.CopyTo(ctx, local, "/tmp/payload", "0644"))
	assert.Equal(t, sha256Hex([]byte(payload)), strings.Fields(m.MustRun(t, "sha256sum /tmp/payload"))[0])
	back := filepath.Join(t.TempDir(), "back")
	require.NoError(t, m.CopyFrom(ctx, "/tmp/payload", back))
	got, err := os.ReadFile(back)
	require.NoError(t, err)
	assert.Equal(t, payload, string(got))

	// Write to the guest's disk: the overlay takes it, the base image must not change.
	m.MustRun(t, "sudo dd if=/dev/urandom of=/var/tmp/junk bs=1M count=16 status=none && sync")
	id1, err := m.BootID(ctx)
	require.NoError(t, err)
	m.Reboot(t)
	id2, err := m.BootID(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, id1, id2, "boot ID must change across a reboot")
	assert.Equal(t, "16777216", m.MustRun(t, "stat -c %s /var/tmp/junk"), "data written before the reboot survives it")

	m.Close()
	assert.Equal(t, before, sha256File(t, cfg.Image), "the base image %s was modified", cfg.Image)
}

// TestKernelPanicFailsFast crashes the guest: the command in flight must fail within 10 s
// with the panic lines, not time out.
func TestKernelPanicFailsFast(t *testing.T) {
	m := harness.Boot(t, harness.WithAllowConsole("kernel panic", "call trace", "oops", "kernel BUG"))
	start := time.Now()
	_, err := m.Run(t.Context(), "sudo sh -c 'echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger'; sleep 600")
	elapsed := time.Since(start)
	require.Error(t, err)
	t.Logf("after %.1fs: %v", elapsed.Seconds(), err)
	assert.Less(t, elapsed, 10*time.Second, "a kernel panic must be reported within 10 s")
	assert.Contains(t, err.Error(), "Kernel panic - not syncing")
	// And the next command fails at once too.
	start = time.Now()
	_, err = m.Run(t.Context(), "true")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// TestPanicReportedByPvpanic: a panicking guest with a pvpanic driver tells QEMU, which pauses
// it and reports GUEST_PANICKED over QMP, whatever the console shows: a panic whose console
// output is lost (or never written) is caught at once too, not by the timeout.
func TestPanicReportedByPvpanic(t *testing.T) {
	m := harness.Boot(t, harness.WithAllowConsole("kernel panic", "call trace", "oops", "kernel BUG"))
	if _, code := m.Output(t, "sudo modprobe pvpanic-pci 2>/dev/null; test -d /sys/bus/pci/drivers/pvpanic-pci"); code != 0 {
		t.Skipf("needs a guest kernel with a pvpanic driver (%s has none: Debian's arm64 cloud kernel lacks CONFIG_PVPANIC)", m.Arch().Name)
	}
	go m.Run(t.Context(), "sudo sh -c 'echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger'")
	select {
	case <-m.Instance().QMP.Panicked():
	case <-time.After(20 * time.Second):
		t.Fatal("no GUEST_PANICKED from QEMU within 20 s of the panic")
	}
	require.Error(t, m.Instance().Fault())
	assert.Contains(t, m.Instance().Fault().Error(), "GUEST_PANICKED")
	_, err := m.Run(t.Context(), "true")
	require.Error(t, err, "a panicked guest answers nothing")
}

// TestStoppedGuestCaughtByHeartbeat: a guest whose vCPUs all stop (QMP stop, as a hung
// hypervisor would leave it) fails the command in flight within 15 s, saying so, instead of
// waiting for the command's own bound.
func TestStoppedGuestCaughtByHeartbeat(t *testing.T) {
	m := harness.Boot(t)
	go func() {
		time.Sleep(2 * time.Second)
		_ = m.Instance().QMP.Run(context.Background(), "stop", nil, nil)
	}()
	start := time.Now()
	_, err := m.Run(t.Context(), "sleep 300")
	require.Error(t, err)
	t.Logf("after %.1fs: %v", time.Since(start).Seconds(), err)
	assert.Less(t, time.Since(start), 15*time.Second, "a stopped guest must be noticed within 15 s")
	assert.Contains(t, err.Error(), `the guest stopped running (QEMU status "paused")`)
}

// TestSSHDKilledMidCommand: when the guest's sshd dies under a running command, the command
// fails at once with "outcome unknown" (the connection was lost: it may or may not have run to
// its end) and is not run again.
func TestSSHDKilledMidCommand(t *testing.T) {
	m := harness.Boot(t)
	start := time.Now()
	_, err := m.Run(t.Context(), "echo ran >> /var/tmp/runs; sudo pkill -KILL -x sshd; sleep 120")
	require.Error(t, err)
	t.Logf("after %.1fs: %v", time.Since(start).Seconds(), err)
	assert.Less(t, time.Since(start), 30*time.Second)
	assert.ErrorIs(t, err, ssh.ErrConnectionLost)
	assert.Contains(t, err.Error(), "connection lost before the command finished")
}

// TestNetworkCutMidCommand: a guest whose network link goes down under a running command
// still runs (QEMU's status stays "running") but cannot answer: the heartbeat's SSH keepalive
// goes unanswered, and the command fails once HeartbeatSilence has passed, saying the guest
// stopped answering, instead of waiting out the command's own bound.
func TestNetworkCutMidCommand(t *testing.T) {
	m := harness.Boot(t)
	go func() {
		time.Sleep(2 * time.Second)
		_ = m.Instance().QMP.Run(context.Background(), "set_link", map[string]any{"name": "net0", "up": false}, nil)
	}()
	start := time.Now()
	_, err := m.Run(t.Context(), "sleep 600")
	require.Error(t, err)
	t.Logf("after %.1fs: %v", time.Since(start).Seconds(), err)
	assert.Less(t, time.Since(start), harness.HeartbeatSilence+30*time.Second)
	assert.Contains(t, err.Error(), "the guest stopped answering: no SSH keepalive reply")
}

// TestKilledQEMUFailsClearly kills QEMU under a running command.
func TestKilledQEMUFailsClearly(t *testing.T) {
	m := harness.Boot(t)
	go func() {
		time.Sleep(time.Second)
		_ = syscall.Kill(m.Instance().Pid(), syscall.SIGKILL)
	}()
	start := time.Now()
	_, err := m.Run(t.Context(), "sleep 600")
	require.Error(t, err)
	t.Logf("after %.1fs: %v", time.Since(start).Seconds(), err)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, err.Error(), "QEMU exited")
	assert.Contains(t, err.Error(), "killed")
}

// TestBadImageFailsFast: a missing, empty, corrupt or non-disk image fails in under 2 s with an
// error that names the path.
func TestBadImageFailsFast(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.qcow2")
	require.NoError(t, os.WriteFile(corrupt, append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 4096)...), 0o644))
	random := filepath.Join(dir, "random.img")
	junk := make([]byte, 4<<20)
	for i := range junk {
		junk[i] = byte(i*7 + i/13)
	}
	require.NoError(t, os.WriteFile(random, junk, 0o644))
	empty := filepath.Join(dir, "empty.img")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	for name, path := range map[string]string{
		"missing": filepath.Join(dir, "does-not-exist.qcow2"),
		"corrupt": corrupt,
		"random":  random,
		"empty":   empty,
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			m, err := harness.Start(t.Context(), "bad-"+name, t.Logf, harness.WithImage(path))
			if m != nil {
				m.Close()
			}
			require.Error(t, err)
			t.Logf("%v", err)
			assert.Less(t, time.Since(start), 2*time.Second)
			assert.Contains(t, err.Error(), path)
		})
	}
}

// TestInvalidUserDataFailsFast: user-data keys the harness owns are refused before boot.
func TestInvalidUserDataFailsFast(t *testing.T) {
	start := time.Now()
	_, err := harness.Start(t.Context(), "bad-userdata", t.Logf, harness.WithUserData("users", []string{"root"}))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Contains(t, err.Error(), `"users"`)
}

// TestNoQEMUAfterSignals runs a child test process that starts a VM with a TPM, signals the
// child, and requires its QEMU and its swtpm to be gone: SIGINT and SIGTERM stop every VM, remove its private folder and
// exit 130 / 143; after SIGKILL (QEMU dies through Pdeathsig) the folder is left, and the next
// harness process removes it (its flock died with its owner).
func TestNoQEMUAfterSignals(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}, {syscall.SIGKILL, -1}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			tmp, err := os.MkdirTemp("", "vt") // short: a unix socket path lives under it
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(tmp) })
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldVM$", "-test.v")
			cmd.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=1", "TMPDIR="+tmp)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			cmd.Stderr = cmd.Stdout
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			pid, tpmPid := 0, 0
			sc := bufio.NewScanner(stdout)
			deadline := time.AfterFunc(15*time.Minute, func() { _ = cmd.Process.Kill() }) // it may wait for a boot slot
			defer deadline.Stop()
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if v, ok := strings.CutPrefix(line, "SWTPM_PID="); ok {
					tpmPid, _ = strconv.Atoi(v)
				}
				if v, ok := strings.CutPrefix(line, "QEMU_PID="); ok {
					pid, _ = strconv.Atoi(v)
					break
				}
			}
			require.NotZero(t, pid, "the helper never reported its QEMU")
			require.NotZero(t, tpmPid, "the helper never reported its VM's swtpm")
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			require.True(t, alive(pid), "QEMU %d should run while the helper lives", pid)
			require.True(t, alive(tpmPid), "swtpm %d should run while the helper lives", tpmPid)
			dirs, _ := filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
			require.Len(t, dirs, 1, "the helper's private folder")

			require.NoError(t, cmd.Process.Signal(c.sig))
			start := time.Now()
			err = cmd.Wait()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, c.code, exit.ExitCode(), "exit status after %s", c.sig)
			assert.Less(t, time.Since(start), 15*time.Second, "stopping after %s", c.sig)
			gone := false
			for i := 0; i < 50 && !gone; i++ {
				gone = !alive(pid)
				time.Sleep(100 * time.Millisecond)
			}
			assert.True(t, gone, "QEMU %d outlived its test process (%s)", pid, c.sig)
			for i := 0; i < 50 && alive(tpmPid); i++ {
				time.Sleep(100 * time.Millisecond)
			}
			assert.False(t, alive(tpmPid), "swtpm %d outlived its test process (%s)", tpmPid, c.sig)
			left, _ := filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
			if c.sig != syscall.SIGKILL {
				assert.Empty(t, left, "the private folder must be removed on %s", c.sig)
				return
			}
			require.Len(t, left, 1, "a SIGKILLed process cannot clean up")
			nextRunCleansUp(t, tmp)
		})
	}
}

// TestSignalsAtRandomPoints signals a child that restores a VM and runs commands, at a random
// moment of its life (during the restore, the refresh, a command), with SIGINT, SIGTERM or
// SIGKILL: every time, no QEMU of the child's is left and (after the next harness process, for
// SIGKILL) no private folder. VMTEST_SIGNAL_POINTS sets how many (default 20).
func TestSignalsAtRandomPoints(t *testing.T) {
	points := 20
	if v, err := strconv.Atoi(os.Getenv("VMTEST_SIGNAL_POINTS")); err == nil && v > 0 {
		points = v
	}
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}
	for i := 0; i < points; i++ {
		sig := sigs[mrand.IntN(len(sigs))]
		delay := time.Duration(mrand.Int64N(int64(12 * time.Second)))
		t.Run(fmt.Sprintf("%d-%s-after-%s", i, sig, delay.Round(100*time.Millisecond)), func(t *testing.T) {
			tmp, err := os.MkdirTemp("", "vt")
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(tmp) })
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldVM$", "-test.v")
			cmd.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=work", "TMPDIR="+tmp)
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			time.Sleep(delay)
			require.NoError(t, cmd.Process.Signal(sig))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the child did not exit within 30 s of %s", sig)
			}
			// The child's QEMU had its overlay in tmp: none may be left.
			var left []string
			for i := 0; i < 50; i++ {
				out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+tmp).Output()
				if left = strings.Fields(string(out)); len(left) == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			assert.Empty(t, left, "QEMU processes of the child left after %s", sig)
			dirs, _ := filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
			if sig != syscall.SIGKILL {
				assert.Empty(t, dirs, "private folders left after %s", sig)
				return
			}
			nextRunCleansUp(t, tmp)
		})
	}
}

// nextRunCleansUp starts a harness process on tmp, as the next run would (later: a folder
// younger than a minute may still be between its creation and its owner's lock, and is left
// alone), and requires it to remove the private folders a SIGKILLed process left there.
func nextRunCleansUp(t *testing.T, tmp string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
	old := time.Now().Add(-2 * time.Minute)
	for _, d := range dirs {
		require.NoError(t, os.Chtimes(d, old, old))
	}
	clean := exec.Command(os.Args[0], "-test.run=^TestHelperHoldVM$")
	clean.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=cleanup", "TMPDIR="+tmp)
	out, err := clean.CombinedOutput()
	require.NoError(t, err, "%s", out)
	dirs, _ = filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
	assert.Empty(t, dirs, "the next harness process removes a SIGKILLed run's folders")
}

// TestHelperHoldVM is TestNoQEMUAfterSignals's child: it starts a VM, prints QEMU's PID and
// waits for its signal; as "cleanup" it only starts the harness (which removes stale folders).
func TestHelperHoldVM(t *testing.T) {
	switch os.Getenv("VMTEST_SELFTEST_HELPER") {
	case "cleanup":
		_, err := harness.ConfigFromEnv()
		require.NoError(t, err)
		return
	case "work": // restore a VM and keep it busy until signalled
		m := harness.Boot(t)
		for {
			m.MustRun(t, "uname -r; sleep 0.2")
		}
	case "1":
	default:
		t.Skip("helper for TestNoQEMUAfterSignals (runs only as its child)")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Report the PIDs as soon as QEMU runs (its swtpm started first); the boot need not
		// finish.
		for {
			// The VM's QEMU (its overlay is in the "helper" private folder), not the KVM probe's,
			// nor swtpm (its state is in the same folder: matched alone, its PID was reported
			// as QEMU's).
			if out, err := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "-f", "qemu-system.*azl-vmtest-helper").Output(); err == nil {
				if tpm, err := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "-x", "swtpm").Output(); err == nil {
					fmt.Printf("SWTPM_PID=%s\n", strings.Fields(string(tpm))[0])
				}
				fmt.Printf("QEMU_PID=%s\n", strings.Fields(string(out))[0])
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// With a TPM: its swtpm must not outlive the test process either.
	_, _ = harness.Start(ctx, "helper", t.Logf, harness.WithSSHOnly(), harness.WithFreshBoot(), harness.WithTPM())
	time.Sleep(10 * time.Minute)
}

// TestOtherArchitectureBoots boots the stand-in of each architecture that is not the host's
// (aarch64 on an x86-64 host, under TCG) to SSH.
func TestOtherArchitectureBoots(t *testing.T) {
	host, err := arch.Host()
	require.NoError(t, err)
	for _, a := range arch.All() {
		if a.Name == host.Name {
			continue
		}
		t.Run(a.Name, func(t *testing.T) {
			img := standin.ImagePath(standin.CacheDir(), a, standin.Standard)
			if _, err := os.Stat(img); err != nil {
				t.Skipf("needs the %s stand-in image (%s): run `make image`", a.Name, img)
			}
			m := harness.Boot(t, harness.WithArch(a), harness.WithImage(img))
			t.Logf("%s boot stages: %s", a.Name, m.Stages)
			assert.Equal(t, a.Name, m.MustRun(t, "uname -m"))
			assert.Equal(t, "standin", m.Profile().Name)
		})
	}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is dead for our purpose.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func sha256File(t *testing.T, path string) string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
