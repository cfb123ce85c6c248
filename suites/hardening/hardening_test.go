package hardening

import (
	"os"
	"testing"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// One VM for the package: every check here only reads.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }
