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

// TestNoConsoleTrouble scans the whole boot console and kernel log with the console checks. It
// alone answers for the boot's output (every test answers for its own time). It also records
// the boot's timings (a record, not a check: they vary with the accelerator and the load).
func TestNoConsoleTrouble(t *testing.T) {
	m := vm.Machine(t)
	analyze, _ := m.Output(t, CmdBootTime)
	t.Logf("boot time: harness stages %s\n%s", m.Stages, analyze)
	hits := console.Scan(m.Console().Lines(0), console.Checks)
	require.Empty(t, hits, console.Report("serial console", hits, 20))
	dmesg := m.MustRun(t, "sudo dmesg")
	hits = console.Scan(console.SplitLines(dmesg), console.Checks)
	require.Empty(t, hits, console.Report("kernel log", hits, 20))
}
