package boot

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Unit tests: each check fed a recorded good answer passes, and a recorded wrong answer fails
// with a message naming the expected and the actual value. No VM.

func azl4(t *testing.T) profile.Boot {
	p, err := profile.Load("azurelinux-4.0")
	require.NoError(t, err)
	return p.Boot
}

const azl4OSRelease = `NAME="Microsoft Azure Linux"
VERSION="4.0.20260101"
ID=azurelinux
VERSION_ID=4.0
VARIANT_ID=cloud
`

func TestUnitOSRelease(t *testing.T) {
	b := azl4(t)
	require.NoError(t, OSRelease(b, azl4OSRelease))
	err := OSRelease(b, "ID=azurelinux\nVERSION_ID=\"3.0\"\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "4.0", got "3.0"`)
}

func TestUnitKernelRelease(t *testing.T) {
	b := azl4(t)
	require.NoError(t, KernelRelease(b.KernelRelease, "6.18.5-1.8.azl4.x86_64\n"))
	err := KernelRelease(b.KernelRelease, "6.6.96.1-2.azl3")
	require.Error(t, err)
	assert.Contains(t, err.Error(), b.KernelRelease)
	assert.Contains(t, err.Error(), `got "6.6.96.1-2.azl3"`)
}

func TestUnitCmdline(t *testing.T) {
	b := azl4(t)
	good := "BOOT_IMAGE=/boot/vmlinuz-6.18.5 root=UUID=1 ro console=ttyS0,115200n8 rd.shell=0"
	require.NoError(t, Cmdline("ttyS0", b.CmdlineRequired, b.CmdlineForbidden, good))

	err := Cmdline("ttyS0", nil, nil, "root=UUID=1 console=tty0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected console=ttyS0")
	assert.Contains(t, err.Error(), "console=tty0")

	err = Cmdline("ttyS0", b.CmdlineRequired, b.CmdlineForbidden, "console=ttyS0 libata.atapi_enabled=0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "rd.shell=0" among`)
	assert.Contains(t, err.Error(), `expected no "libata.atapi_enabled=0"`)
}

func TestUnitBootMode(t *testing.T) {
	require.NoError(t, BootMode("uefi", "uefi\n"))
	err := BootMode("uefi", "bios\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "uefi", got "bios"`)
}

func TestUnitBootloader(t *testing.T) {
	grub := "grubcfg /boot/grub2/grub.cfg\ngrubefi /boot/efi/EFI/BOOT/grubx64.efi\n"
	require.NoError(t, Bootloader("grub2", "uefi", grub))
	require.NoError(t, Bootloader("grub2", "bios", "grubcfg /boot/grub/grub.cfg\n"))
	err := Bootloader("grub2", "uefi", "systemd-boot\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "grub2", got "systemd-boot"`)
	err = Bootloader("grub2", "uefi", "grubcfg /boot/grub/grub.cfg\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `got "unknown"`)
}

func TestUnitBLSEntries(t *testing.T) {
	require.NoError(t, BLSEntries(true, "/boot/loader/entries/abc-6.18.5.conf\n"))
	err := BLSEntries(true, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected at least one, got none")
	err = BLSEntries(false, "/boot/loader/entries/x.conf")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected none, got "/boot/loader/entries/x.conf"`)
}

func TestUnitRootFS(t *testing.T) {
	require.NoError(t, RootFS("ext4", "ext4\n"))
	err := RootFS("ext4", "xfs\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "ext4", got "xfs"`)
}

func TestUnitSystemState(t *testing.T) {
	require.NoError(t, SystemState("running", "running\n"))
	err := SystemState("running", "degraded\nauditd.service\nchronyd.service\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "running", got "degraded"`)
	assert.Contains(t, err.Error(), "auditd.service chronyd.service")
}

func TestUnitCloudInit(t *testing.T) {
	// cloud-init 22.4 (no errors line) and 24.x (errors: []) both pass.
	require.NoError(t, CloudInit("done", "status: done\nboot_status_code: enabled-by-generator\ndetail:\nDataSourceNoCloud [seed=/dev/vdb]\nexit=0\n"))
	require.NoError(t, CloudInit("done", "status: done\nextended_status: done\nerrors: []\nrecoverable_errors: {}\nexit=0\n"))

	err := CloudInit("done", "status: error\nerrors:\n\t- (\"scripts_user\", RuntimeError('runparts: 1 failures'))\nexit=1\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "done", got "error"`)
	assert.Contains(t, err.Error(), "cloud-init errors: expected none, got")
	assert.Contains(t, err.Error(), "scripts_user")
	assert.Contains(t, err.Error(), `expected 0, got "1"`)

	err = CloudInit("done", "status: done\nerrors: []\nexit=2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `exit code: expected 0, got "2"`)
}
