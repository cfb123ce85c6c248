package hyperv

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// One VM for the static checks and the hypervisor tests.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the static checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestDetectVirtNamesTheHypervisor: under QEMU the guest must see the hypervisor the harness
// used (kvm, or qemu under TCG): a guest that misdetects its platform misconfigures itself
// (cloud-init's ds-identify, waagent's condition).
func TestDetectVirtNamesTheHypervisor(t *testing.T) {
	m := vm.Machine(t)
	m.Require(t, harness.PowerAccelerator)
	out, _ := m.Output(t, "systemd-detect-virt")
	require.NoError(t, DetectVirt(m.Accelerator(), out))
}

// TestHyperVRuntime checks what only a guest on Hyper-V (Azure) has: the synthetic storage and
// network devices on VMBus with their drivers bound, the KVP daemon running, and the Hyper-V PTP
// clock chrony can use. Elsewhere it skips, naming the hypervisor it found.
func TestHyperVRuntime(t *testing.T) {
	m := vm.Machine(t)
	virt, _ := m.Output(t, "systemd-detect-virt")
	if virt = strings.TrimSpace(virt); virt != "microsoft" {
		t.Skipf("needs Hyper-V: running under %s (systemd-detect-virt)", virt)
	}
	require.NoError(t, VMBusDevices(m.MustRun(t, "cat /sys/bus/vmbus/devices/*/class_id")))
	for _, d := range []string{"hv_storvsc", "hv_netvsc"} {
		out, _ := m.Output(t, "ls /sys/bus/vmbus/drivers/"+d+"/ | grep -c -")
		assert.NotEqual(t, "0", strings.TrimSpace(out), "VMBus driver %s: expected bound to a device, got none", d)
	}
	unit := harness.Want[string](t, m, "hyperv.kvp_daemon")
	state, _ := m.Output(t, "systemctl is-active "+unit)
	assert.Equal(t, "active", strings.TrimSpace(state), "KVP daemon %s", unit)
	_, code := m.Output(t, "test -e /dev/ptp_hyperv")
	assert.Equal(t, 0, code, "/dev/ptp_hyperv: expected the Hyper-V PTP clock, got none")
}
