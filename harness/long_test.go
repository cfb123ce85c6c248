package harness

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLongSkipsOnlyUnderShort runs a helper test twice in a child: without -short it runs past
// Long, with -short it skips naming why.
func TestLongSkipsOnlyUnderShort(t *testing.T) {
	run := func(args ...string) string {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperLong$", "-test.v"}, args...)...)
		cmd.Env = append(os.Environ(), "VMTEST_LONG_HELPER=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	full := run()
	assert.Contains(t, full, "ran past Long")
	assert.Contains(t, full, "--- PASS: TestHelperLong")
	short := run("-test.short")
	assert.NotContains(t, short, "ran past Long")
	assert.Contains(t, short, "--- SKIP: TestHelperLong")
	assert.True(t, strings.Contains(short, "long under TCG (a reboot): skipped by go test -short; make check runs it"), short)
}

func TestHelperLong(t *testing.T) {
	if os.Getenv("VMTEST_LONG_HELPER") != "1" {
		t.Skip("helper of TestLongSkipsOnlyUnderShort")
	}
	Long(t, "a reboot")
	t.Log("ran past Long")
}
