package selftest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// TestUnexpectedDenialFailsTheTest: a test during which a service is denied something fails,
// with the record, though every command it ran succeeded. Its child mislabels chrony's
// configuration (shadow_t), restarts chronyd (which may not read it: a real AVC), puts the label
// back, and declares nothing.
func TestUnexpectedDenialFailsTheTest(t *testing.T) {
	m := harness.Boot(t)
	if mode := harness.Want[string](t, m, "selinux.mode"); mode == "disabled" {
		t.Skip("needs SELinux: the profile says it is disabled")
	}
	m.Close() // the child restores its own VM
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDenial$", "-test.v")
	cmd.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=denial", "VMTEST_KEEP=never")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the child test must fail on the denial:\n%s", out)
	assert.Contains(t, string(out), "SELinux denials: expected none during the test, got")
	assert.Regexp(t, `comm="chronyd".*tcontext=system_u:object_r:shadow_t`, string(out), "the failure names the record")
	assert.Contains(t, string(out), "--- FAIL: TestHelperDenial", "the test itself failed, not the harness")
}

// TestHelperDenial is TestUnexpectedDenialFailsTheTest's child.
func TestHelperDenial(t *testing.T) {
	if os.Getenv("VMTEST_SELFTEST_HELPER") != "denial" {
		t.Skip("helper for TestUnexpectedDenialFailsTheTest (runs only as its child)")
	}
	m := harness.Boot(t)
	m.MustRun(t, "sudo chcon -t shadow_t /etc/chrony/chrony.conf && { sudo systemctl restart chrony || true; } && sudo restorecon -F /etc/chrony/chrony.conf && sudo systemctl restart chrony")
}
