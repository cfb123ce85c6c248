package selftest

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
)

// TestVmtestCommand drives the contributor's tool: vmtest spawn keeps a VM and says how to
// reach it; from other processes vmtest ssh runs a command on it, vmtest list shows it, vmtest
// stop ends it (QEMU gone, state removed); a spawner killed with SIGKILL is reported and its
// state cleaned by the next list, its private folder by the next harness process.
func TestVmtestCommand(t *testing.T) {
	bin, vmtest := buildVmtest(t)
	name := "selftest-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))

	// spawn: up when it prints the ssh line.
	spawnUp := func(name string, env ...string) *exec.Cmd {
		cmd := exec.Command(bin, "spawn", "-name", name)
		cmd.Env = append(os.Environ(), env...)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		up := untilLine(stdout, "vmtest stop")
		select {
		case text, ok := <-up:
			require.True(t, ok, "vmtest spawn ended before the VM was up")
			t.Logf("vmtest spawn:\n%s", text)
			assert.Contains(t, text, "vmtest ssh "+name+" -- cat /etc/os-release")
			assert.Contains(t, text, "StrictHostKeyChecking=yes")
		case <-time.After(8 * time.Minute):
			t.Fatal("vmtest spawn: no VM within 8 minutes")
		}
		return cmd
	}
	spawn := spawnUp(name)
	keptForPerson(t, spawn.Process.Pid)

	out, err := vmtest("ssh", name, "--", "cat", "/etc/os-release")
	require.NoError(t, err, out)
	assert.Contains(t, out, "VARIANT_ID=azl-vmtest-standin")
	out, err = vmtest("ssh", name, "--", "exit", "7")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, out)
	assert.Equal(t, 7, ee.ExitCode(), "the guest command's exit code is vmtest ssh's")

	out, err = vmtest("list")
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^`+name+`\s+ssh://\S+\s+(x86_64|aarch64)\s+standin\s`, out)

	out, err = vmtest("stop", name)
	require.NoError(t, err, out)
	assert.Contains(t, out, name+" stopped")
	waited := make(chan error, 1)
	go func() { waited <- spawn.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("vmtest spawn did not exit after vmtest stop")
	}
	out, _ = vmtest("list")
	assert.NotContains(t, out, name)
	_, err = vmtest("ssh", name, "--", "true")
	assert.Error(t, err)

	// A spawner killed outright: its QEMU goes with it (the harness's lifetime rules), the
	// next list reports and removes its state, and the next harness process its private folder
	// (in a TMPDIR of its own, so that nothing is left in the user's).
	tmp, err := os.MkdirTemp("", "vt") // short: a unix socket path lives under it
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	killed := spawnUp(name+"-k", "TMPDIR="+tmp)
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	_ = killed.Wait()
	out, _ = vmtest("list")
	assert.Contains(t, out, name+"-k: its spawner is gone")
	out, _ = vmtest("list")
	assert.NotContains(t, out, name+"-k")
	dirs, _ := filepath.Glob(filepath.Join(tmp, "azl-vmtest-*"))
	require.Len(t, dirs, 1, "the killed spawner's private folder, in its TMPDIR")
	nextRunCleansUp(t, tmp)
}

// untilLine reads a child's output: the channel gets everything read so far once a line holds
// marker, and is closed when the output ends.
func untilLine(r io.Reader, marker string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		var text strings.Builder
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			text.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), marker) {
				ch <- text.String()
			}
		}
		close(ch)
	}()
	return ch
}

// buildVmtest builds cmd/vmtest and returns its path and a runner (2-minute bound a call).
func buildVmtest(t *testing.T) (string, func(args ...string) (string, error)) {
	bin := filepath.Join(t.TempDir(), "vmtest")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vmtest")
	build.Dir = "../.."
	built, err := build.CombinedOutput()
	require.NoError(t, err, "%s", built)
	return bin, func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
}

// TestHelperFailOnPurpose is TestKeepVMOnFailure's child: it leaves a mark in its VM and fails.
func TestHelperFailOnPurpose(t *testing.T) {
	if os.Getenv("VMTEST_SELFTEST_HELPER") != "fail" {
		t.Skip("helper for TestKeepVMOnFailure (runs only as its child)")
	}
	m := harness.Boot(t)
	m.MustRun(t, "echo left-by-the-failing-test > /tmp/vmtest-mark")
	t.Error("failing on purpose")
}

// TestKeepVMOnFailure: with VMTEST_KEEP=vm-on-failure a failing test keeps its VM after the
// test, says how to reach it, and vmtest list/ssh find it (the very VM: the failing test's mark
// is there); vmtest stop ends it, and no QEMU is left.
func TestKeepVMOnFailure(t *testing.T) {
	bin, vmtest := buildVmtest(t)
	child := filepath.Join(t.TempDir(), "selftest.test")
	build := exec.Command("go", "test", "-c", "-o", child, ".")
	built, err := build.CombinedOutput()
	require.NoError(t, err, "%s", built)

	cmd := exec.Command(child, "-test.run", "^TestHelperFailOnPurpose$", "-test.timeout", "20m")
	cmd.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=fail", "VMTEST_KEEP=vm-on-failure")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = os.Stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	kept := untilLine(stderr, "vmtest test ")
	var text string
	select {
	case s, ok := <-kept:
		require.True(t, ok, "the failing test ended without keeping its VM")
		text = s
	case <-time.After(10 * time.Minute):
		t.Fatal("no kept VM within 10 minutes")
	}
	t.Logf("child:\n%s", text)
	const name = "testhelperfailonpurpose"
	assert.Contains(t, text, "TestHelperFailOnPurpose failed: its VM is kept as "+name)
	assert.Contains(t, text, "vmtest ssh "+name+" -- cat /etc/os-release")
	assert.Contains(t, text, "StrictHostKeyChecking=yes")

	keptForPerson(t, cmd.Process.Pid)

	out, err := vmtest("list")
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^`+name+`\s+ssh://\S+\s+(x86_64|aarch64)\s+standin\s.*failed TestHelperFailOnPurpose$`, out)
	mark, err := exec.CommandContext(t.Context(), bin, "ssh", name, "--", "cat", "/tmp/vmtest-mark").Output() // stdout: the guest's
	require.NoError(t, err)
	assert.Equal(t, "left-by-the-failing-test", strings.TrimSpace(string(mark)), "the kept VM is the failing test's")

	out, err = vmtest("stop", name)
	require.NoError(t, err, out)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		require.Error(t, err, "the child failed a test")
	case <-time.After(time.Minute):
		t.Fatal("the test binary did not exit after vmtest stop")
	}
	out, _ = vmtest("list")
	assert.NotContains(t, out, name)
	leftover, _ := exec.Command("pgrep", "-f", "azl-vmtest-TestHelperFail").Output()
	assert.Empty(t, strings.TrimSpace(string(leftover)), "no QEMU of the kept VM left")
}

// keptForPerson asserts that process pid, which keeps a VM for a person, tells the tests that
// wait for a VM slot so (slots.KeptForPerson): only the person frees that slot.
func keptForPerson(t *testing.T, pid int) {
	t.Helper()
	marker, err := slots.Marker(pid)
	require.NoError(t, err, "the process keeping a VM marks its slot as kept for a person")
	assert.Equal(t, "person", marker)
}
