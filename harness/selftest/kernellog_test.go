package selftest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// kernelWarning is what the child logs: a kernel warning's first line as the kernel prints it,
// at KERN_WARNING (4), which a `quiet` kernel keeps off the serial console: only the
// after-test read of the kernel log sees it.
const kernelWarning = "WARNING: CPU: 0 PID: 1 at azl-vmtest/selftest.c:1 injected by TestKernelWarningFailsItsTest"

// TestKernelWarningFailsItsTest: a test during which the guest's kernel logs a warning fails,
// naming it, though every command it ran succeeded; the harness read the log as root in its
// kept root shell (one `sudo -n sh` for the VM, opened when the restored guest was refreshed),
// not with a sudo of its own.
func TestKernelWarningFailsItsTest(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKernelWarning$", "-test.v")
	cmd.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=kernel-warning", "VMTEST_KEEP=never")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the child test must fail on the kernel warning:\n%s", out)
	assert.Contains(t, string(out), "kernel log (dmesg)")
	assert.Contains(t, string(out), kernelWarning, "the failure quotes the line")
	assert.Contains(t, string(out), "--- FAIL: TestHelperKernelWarning", "the test itself failed, not the harness")
	assert.Contains(t, string(out), "kept root shells: 1\n", "the guest ran one kept root shell during the test")
	assert.NotContains(t, string(out), "did not run a batch", "the guest refused the kept root shell")
}

// TestHelperKernelWarning is TestKernelWarningFailsItsTest's child.
func TestHelperKernelWarning(t *testing.T) {
	if os.Getenv("VMTEST_SELFTEST_HELPER") != "kernel-warning" {
		t.Skip("helper for TestKernelWarningFailsItsTest (runs only as its child)")
	}
	m := harness.Boot(t)
	// sudo runs the shell's child, `sh`, and waits: one process has the full command line.
	t.Logf("kept root shells: %s\n", m.MustRun(t, "pgrep -c -x -f '"+harness.RootShellCommand+"' || true"))
	m.MustRun(t, "echo '<4>"+kernelWarning+"' | sudo tee /dev/kmsg >/dev/null")
}
