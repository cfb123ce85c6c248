package harness

import (
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

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// TestStopAllWaitsForAMachineBeingClosed: a program that stops its VM on the same signal the
// harness's handler gets (vmtest spawn) may already be in Close when the handler looks for
// machines to stop; the handler must still wait for that Close before the process exits, or
// the VM's folder is left behind (seen in make test: vmtest spawn stopped by vmtest stop).
func TestStopAllWaitsForAMachineBeingClosed(t *testing.T) {
	dir, err := newPrivateDir("t")
	require.NoError(t, err)
	t.Cleanup(func() { removePrivateDir(dir) })
	// Close waits for the start it cancels: that holds it at its start here.
	m := &Machine{name: "t", dir: dir, cancelStart: func() {}}
	m.starting.Add(1)
	register(m)

	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	require.Eventually(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.closed }, 5*time.Second, time.Millisecond)

	stopped := make(chan struct{})
	resumeAfterStopAll(t)
	go func() { stopAll(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stopAll returned while a machine was still being closed: the process would exit with its folder left")
	case <-time.After(300 * time.Millisecond):
	}
	m.starting.Done()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stopAll did not return once the machine was closed")
	}
	assert.NoDirExists(t, dir, "the folder is gone when stopAll returns")
	<-closed
}

// TestCloseDuringQEMUStartStopsItFirst: a signal that comes while QEMU has been forked but
// does not answer QMP yet (make test, CI: SIGTERM to a child whose VM had just started left
// its folder behind) must stop that QEMU before the folder is removed; otherwise the process
// writes into the folder as it is removed and outlives Close. The QEMU here is a stand-in
// script that keeps writing files into its working folder (the machine's) and never answers.
func TestCloseDuringQEMUStartStopsItFirst(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("needs qemu-img (the overlay is made before QEMU starts): run scripts/host-setup.sh")
	}
	host, err := arch.Host()
	require.NoError(t, err)
	if _, _, err := host.Firmware(); err != nil {
		t.Skipf("needs the host's UEFI firmware (copied before QEMU starts): %v", err)
	}
	work := t.TempDir()
	t.Setenv("TMPDIR", t.TempDir())
	base := filepath.Join(work, "base.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput()
	require.NoError(t, err, "%s", out)
	pidFile := filepath.Join(work, "qemu.pid")
	fake := filepath.Join(work, "qemu-system-fake")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho $$ > "+pidFile+
		"\ni=0\nwhile :; do i=$((i+1)); touch written.$i 2>/dev/null; sleep 0.01; done\n"), 0o755))

	cfg, err := ConfigFromEnv()
	require.NoError(t, err)
	cfg.Arch = host
	cfg.Arch.QEMUBinary = fake
	l := launch{cfg: cfg, info: qemu.ImageInfo{Path: base, Format: "qcow2"}, accel: "tcg"}
	type result struct {
		m   *Machine
		err error
	}
	booted := make(chan result, 1)
	go func() {
		m, err := l.boot(t.Context(), "closing", t.Logf, "")
		booted <- result{m, err}
	}()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err == nil
	}, time.Minute, 10*time.Millisecond, "the stand-in QEMU never started (waiting for a VM slot?)")
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"closing-*"))
	require.Len(t, dirs, 1, "the machine's private folder")
	require.Eventually(t, func() bool {
		written, _ := filepath.Glob(filepath.Join(dirs[0], "written.*"))
		return len(written) > 0
	}, 10*time.Second, 10*time.Millisecond, "the stand-in QEMU writes into the machine's folder")

	resumeAfterStopAll(t)
	stopAll() // what SIGINT and SIGTERM do
	assert.Error(t, syscall.Kill(pid, 0), "the QEMU being started (pid %d) still runs after Close", pid)
	assert.NoDirExists(t, dirs[0], "the machine's folder is removed")
	select {
	case r := <-booted:
		require.Error(t, r.err, "a start that Close cancelled reports an error")
		t.Logf("the start ended with: %v", r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("the start did not end within 5 s of Close")
	}
}

// TestStopAllLeavesNoFolderOfAStartUnderWay: a signal that comes while a start is between its
// checks and its machine (make test: SIGTERM 1.6 s into a child's restore left its folder)
// must still leave no private folder. A folder made before the handler began, whose machine
// is not registered yet, is removed; none can be made after it began.
func TestStopAllLeavesNoFolderOfAStartUnderWay(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	made, err := newPrivateDir("made")
	require.NoError(t, err)
	resumeAfterStopAll(t)
	stopAll()
	assert.NoDirExists(t, made, "the folder of a machine not yet registered when the signal came")
	dir, err := newPrivateDir("late")
	assert.ErrorContains(t, err, "stopping on a signal", "a folder asked for after the handler began")
	assert.Empty(t, dir)
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	assert.Empty(t, left, "private folders left after stopAll")
}

// resumeAfterStopAll lets this test process make folders again after the test's stopAll (a
// real one exits).
func resumeAfterStopAll(t *testing.T) {
	t.Cleanup(func() {
		liveMu.Lock()
		stopping = false
		liveMu.Unlock()
	})
}
