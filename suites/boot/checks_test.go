package boot

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

func TestUnitConsole(t *testing.T) {
	want := map[string]string{"x86_64": "ttyS0", "aarch64": "ttyAMA0"}
	require.NoError(t, Console(want, "arch=x86_64\nroot=UUID=1 console=tty0 console=ttyS0,115200n8\n"))
	err := Console(want, "arch=aarch64\nroot=UUID=1 console=ttyS0\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected console=ttyAMA0, got "root=UUID=1 console=ttyS0" (console arguments: "console=ttyS0")`)
	err = Console(want, "arch=riscv64\nconsole=ttyS0\n")
	assert.ErrorContains(t, err, `expected an architecture the profile names a console for (aarch64, x86_64), got "riscv64"`)
}

func TestUnitBootloader(t *testing.T) {
	require.NoError(t, Bootloader("grub2", "uefi\ngrubcfg /boot/grub2/grub.cfg\ngrubefi /boot/efi/EFI/BOOT/grubx64.efi\n"))
	require.NoError(t, Bootloader("grub2", "bios\ngrubcfg /boot/grub/grub.cfg\n"))
	err := Bootloader("grub2", "uefi\nsystemd-boot\n")
	assert.ErrorContains(t, err, `expected "grub2", got "systemd-boot"`)
	err = Bootloader("grub2", "uefi\ngrubcfg /boot/grub/grub.cfg\n")
	assert.ErrorContains(t, err, `got "unknown"`, "a grub.cfg without a GRUB EFI binary on UEFI is not GRUB booting")
}

func TestUnitBLSEntries(t *testing.T) {
	require.NoError(t, BLSEntries(false, ""))
	err := BLSEntries(true, "")
	assert.ErrorContains(t, err, "expected at least one, got none")
	err = BLSEntries(false, "/boot/loader/entries/x.conf")
	assert.ErrorContains(t, err, `expected none, got "/boot/loader/entries/x.conf"`)
}
