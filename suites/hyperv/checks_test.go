package hyperv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

func TestUnitDetectVirt(t *testing.T) {
	require.NoError(t, DetectVirt("tcg", "qemu\n"))
	require.NoError(t, DetectVirt("kvm", "kvm\n"))
	assert.ErrorContains(t, DetectVirt("tcg", "none\n"), `systemd-detect-virt (QEMU with tcg): expected "qemu", got "none"`)
	assert.ErrorContains(t, DetectVirt("kvm", "qemu\n"), `expected "kvm", got "qemu"`)
	assert.ErrorContains(t, DetectVirt("", "qemu\n"), "no expectation")
}

// Class IDs as /sys/bus/vmbus/devices/*/class_id prints them on an Azure VM (LISA's lsvmbus
// names them: storvsc, netvsc, KVP, heartbeat, ...).
func TestUnitVMBusDevices(t *testing.T) {
	azure := "{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}\n{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n{a9a0f4e7-5a45-4d96-b827-8a841e8c03e6}\n{57164f39-9115-4e78-ab55-382f3bd5422d}\n"
	require.NoError(t, VMBusDevices(azure))
	err := VMBusDevices("{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected a synthetic SCSI (storvsc) device (class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f)")
	assert.NotContains(t, err.Error(), "netvsc")
}
