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

func TestOSRelease(t *testing.T) {
	m := vm.Machine(t)
	b := m.Profile().Boot
	harness.Want(t, m, "boot.os_id", b.OSID)
	require.NoError(t, OSRelease(b, m.MustRun(t, CmdOSRelease)))
}

func TestKernelRelease(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.kernel_release", m.Profile().Boot.KernelRelease)
	require.NoError(t, KernelRelease(want, m.MustRun(t, CmdUname)))
}

func TestKernelCmdline(t *testing.T) {
	m := vm.Machine(t)
	b := m.Profile().Boot
	console := harness.Want(t, m, "boot.console", b.Console[m.Arch().Name])
	cmdline := m.MustRun(t, CmdCmdline)
	t.Logf("cmdline: %s", cmdline)
	require.NoError(t, Cmdline(console, b.CmdlineRequired, b.CmdlineForbidden, cmdline))
}

func TestBootMode(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.boot_mode", m.Profile().Boot.BootMode)
	require.NoError(t, BootMode(want, m.MustRun(t, CmdBootMode)))
}

func TestBootloader(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.bootloader", m.Profile().Boot.Bootloader)
	require.NoError(t, Bootloader(want, m.MustRun(t, CmdBootMode), m.MustRun(t, CmdBootloader)))
}

func TestBLSEntries(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.bls_entries", m.Profile().Boot.BLSEntries)
	require.NoError(t, BLSEntries(*want, m.MustRun(t, CmdBLS)))
}

func TestRootFilesystem(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.root_fs", m.Profile().Boot.RootFS)
	require.NoError(t, RootFS(want, m.MustRun(t, CmdRootFS)))
}

func TestSystemRunning(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.system_state", m.Profile().Boot.SystemState)
	out, _ := m.Output(t, CmdSystemd) // is-system-running exits non-zero unless running
	// A record, not a check (timings vary with KVM or TCG and the host's load).
	analyze, _ := m.Output(t, CmdBootTime)
	t.Logf("boot time: harness stages %s\n%s", m.Stages, analyze)
	require.NoError(t, SystemState(want, out))
}

func TestCloudInitFinished(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "boot.cloud_init_status", m.Profile().Boot.CloudInitStatus)
	out, _ := m.Output(t, CmdCloudInit)
	require.NoError(t, CloudInit(want, out))
}

// TestNoConsoleTrouble scans the whole boot console and kernel log with the console checks. It
// alone answers for the boot's output (every test answers for its own time).
func TestNoConsoleTrouble(t *testing.T) {
	m := vm.Machine(t)
	hits := console.Scan(m.Console().Lines(0), console.Checks)
	require.Empty(t, hits, console.Report("serial console", hits, 20))
	dmesg := m.MustRun(t, "sudo dmesg")
	hits = console.Scan(console.SplitLines(dmesg), console.Checks)
	require.Empty(t, hits, console.Report("kernel log", hits, 20))
}
