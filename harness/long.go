package harness

import "testing"

// Long marks a test that takes minutes under TCG (its own VM, a reboot, or a package manager's
// whole lifecycle) and whose subject the guest's architecture does not change: under go test
// -short it skips, saying so. make test runs the suites on the host's architecture in full and
// on the others with -short, to stay inside CI's time; make check, and go test without -short,
// run it everywhere. why names what the test would have done.
func Long(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("long under TCG (%s): skipped by go test -short; make check runs it", why)
	}
}
