package arch

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLookupByEveryName(t *testing.T) {
	for _, n := range []string{"x86_64", "amd64", "AMD64 "} {
		a, err := Lookup(n)
		require.NoError(t, err, n)
		assert.Equal(t, "x86_64", a.Name)
	}
	for _, n := range []string{"aarch64", "arm64"} {
		a, err := Lookup(n)
		require.NoError(t, err, n)
		assert.Equal(t, "aarch64", a.Name)
	}
	_, err := Lookup("riscv64")
	assert.ErrorContains(t, err, `unknown architecture "riscv64": use one of x86_64, aarch64`)
}

// Every architecture states every fact the harness and the image builder read.
func TestEveryArchComplete(t *testing.T) {
	for _, a := range All() {
		for field, v := range map[string]string{"GOARCH": a.GOARCH, "Debian": a.Debian, "QEMUBinary": a.QEMUBinary,
			"Machine": a.Machine, "TCGCPU": a.TCGCPU, "Console": a.Console, "GrubTarget": a.GrubTarget,
			"EFIBootFile": a.EFIBootFile, "GrubPackage": a.GrubPackage, "KernelPackage": a.KernelPackage,
			"RootPartType": a.RootPartType, "DiskDevice": a.DiskDevice, "TPMDevice": a.TPMDevice,
			"EFISuffix": a.EFISuffix, "GrubSignedPackage": a.GrubSignedPackage} {
			assert.NotEmpty(t, v, "%s: %s", a.Name, field)
		}
		assert.NotEmpty(t, a.FirmwareCode, a.Name)
		assert.NotEmpty(t, a.SecureBootCode, a.Name)
		assert.NotEmpty(t, a.SecureBootVars, a.Name)
		assert.Len(t, a.FirmwareVars, len(a.FirmwareCode), "%s: a vars image for each code image", a.Name)
		assert.True(t, strings.HasPrefix(a.QEMUBinary, "qemu-system-"), a.Name)
	}
}

func TestFirmwareMissingNamesThePackage(t *testing.T) {
	a, err := Lookup("aarch64")
	require.NoError(t, err)
	a.FirmwareCode, a.FirmwareVars = []string{"/nonexistent/code.fd"}, []string{"/nonexistent/vars.fd"}
	_, _, err = a.Firmware()
	assert.ErrorContains(t, err, "apt-get install qemu-efi-aarch64")
}

func TestSecureBootFirmwareMissingNamesThePackage(t *testing.T) {
	a, err := Lookup("x86_64")
	require.NoError(t, err)
	a.SecureBootCode, a.SecureBootVars = []string{"/nonexistent/code.secboot.fd"}, []string{"/nonexistent/vars.ms.fd"}
	_, _, err = a.SecureBootFirmware()
	assert.ErrorContains(t, err, "no Secure Boot UEFI firmware for x86_64")
	assert.ErrorContains(t, err, "apt-get install ovmf")
}
