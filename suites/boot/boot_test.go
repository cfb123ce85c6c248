package boot

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/console"
)

// One VM for the package: every check here only reads. It boots for real (no saved state):
// this suite is about the boot itself (console at boot, cloud-init's first run, boot time).
var vm = harness.NewShared(harness.WithFreshBoot())

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestNoConsoleTrouble scans the whole boot console with the console checks. It alone answers
// for the boot's console output (every test answers for its own time).
func TestNoConsoleTrouble(t *testing.T) {
	m := vm.Machine(t)
	m.Require(t, harness.PowerConsole)
	hits := console.Scan(m.Console().Lines(0), console.Checks)
	require.Empty(t, hits, console.Report("serial console", hits, 20))
}

// TestNoKernelLogTrouble scans the boot's whole kernel log with the console checks (any
// target: it is read over SSH). It also records the boot's timings (a record, not a check:
// they vary with the accelerator and the load).
func TestNoKernelLogTrouble(t *testing.T) {
	m := vm.Machine(t)
	analyze, _ := m.Output(t, CmdBootTime)
	t.Logf("boot time: harness stages %s\n%s", m.Stages, analyze)
	dmesg := m.MustRun(t, "sudo dmesg")
	hits := console.Scan(console.SplitLines(dmesg), console.Checks)
	require.Empty(t, hits, console.Report("kernel log", hits, 20))
}
