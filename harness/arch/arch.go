// Package arch holds the per-architecture facts the harness and the image builder need, in one
// type, so that adding an architecture means adding one table entry.
package arch

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Arch is one guest architecture.
type Arch struct {
	// Name is the kernel's name (uname -m): x86_64 or aarch64.
	Name string
	// GOARCH is Go's name, used to build static helper binaries for the guest.
	GOARCH string
	// Debian is Debian's architecture name (amd64, arm64).
	Debian string
	// QEMUBinary is the system emulator.
	QEMUBinary string
	// Machine is the -machine value.
	Machine string
	// TCGCPU is the -cpu value under TCG.
	TCGCPU string
	// Console is the guest's serial console device (without /dev/).
	Console string
	// FirmwareCode and FirmwareVars are UEFI pflash images (code read-only, vars copied per VM).
	// Several candidates are listed in order of preference; the first that exists is used.
	FirmwareCode []string
	FirmwareVars []string
	// SecureBootCode and SecureBootVars are the UEFI images for Secure Boot: code built with
	// it, and vars with Microsoft's keys enrolled (the keys that sign shim) and Secure Boot on.
	// SecureBootSMM says the code needs SMM (OVMF's secboot build keeps its variable store
	// in SMM: q35 with smm=on and the vars flash marked secure).
	SecureBootCode []string
	SecureBootVars []string
	SecureBootSMM  bool
	// GrubTarget is the GRUB platform (grub-mkimage -O) and EFIBootFile the removable-media
	// boot path on the ESP.
	GrubTarget  string
	EFIBootFile string
	// EFISuffix names the architecture in the signed boot chain's files: shim<suffix>.efi,
	// grub<suffix>.efi, mm<suffix>.efi (x64, aa64).
	EFISuffix string
	// GrubPackage ships the GRUB modules for GrubTarget in the guest; GrubSignedPackage the
	// signed GRUB image shim starts; KernelPackage is the stand-in's kernel.
	GrubPackage       string
	GrubSignedPackage string
	KernelPackage     string
	// RootPartType is the GPT discoverable-partitions type of a root partition.
	RootPartType string
	// DiskDevice is the virtio disk device model.
	DiskDevice string
	// TPMDevice is QEMU's TPM front end for a software TPM: tpm-crb on q35, tpm-tis-device on
	// the virt machine.
	TPMDevice string
}

var table = []Arch{
	{
		Name:       "x86_64",
		GOARCH:     "amd64",
		Debian:     "amd64",
		QEMUBinary: "qemu-system-x86_64",
		Machine:    "q35",
		TCGCPU:     "max",
		Console:    "ttyS0",
		FirmwareCode: []string{
			"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd",
			"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/qemu/ovmf-x86_64-code.bin",
		},
		FirmwareVars: []string{
			"/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd",
			"/usr/share/edk2/ovmf/OVMF_VARS.fd", "/usr/share/qemu/ovmf-x86_64-vars.bin",
		},
		SecureBootCode: []string{
			"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_CODE.secboot.fd",
			"/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/qemu/ovmf-x86_64-ms-code.bin",
		},
		SecureBootVars: []string{
			"/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS.ms.fd",
			"/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd", "/usr/share/qemu/ovmf-x86_64-ms-vars.bin",
		},
		SecureBootSMM:     true,
		GrubTarget:        "x86_64-efi",
		EFIBootFile:       "BOOTX64.EFI",
		EFISuffix:         "x64",
		GrubPackage:       "grub-efi-amd64-bin",
		GrubSignedPackage: "grub-efi-amd64-signed",
		KernelPackage:     "linux-image-cloud-amd64",
		RootPartType:      "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
		DiskDevice:        "virtio-blk-pci",
		TPMDevice:         "tpm-crb",
	},
	{
		Name:       "aarch64",
		GOARCH:     "arm64",
		Debian:     "arm64",
		QEMUBinary: "qemu-system-aarch64",
		Machine:    "virt",
		// pauth-impdef: the architected pointer-authentication algorithm is very slow under TCG.
		TCGCPU:  "max,pauth-impdef=on",
		Console: "ttyAMA0",
		FirmwareCode: []string{
			"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
			"/usr/share/qemu/edk2-aarch64-code.fd",
		},
		FirmwareVars: []string{
			"/usr/share/AAVMF/AAVMF_VARS.fd", "/usr/share/edk2/aarch64/vars-template-pflash.raw",
			"/usr/share/qemu/edk2-arm-vars.fd",
		},
		// AAVMF has one build: Debian's AAVMF_CODE.ms.fd links to AAVMF_CODE.fd, and its
		// .ms vars enroll Microsoft's keys. The virt machine has no SMM to ask for.
		SecureBootCode: []string{
			"/usr/share/AAVMF/AAVMF_CODE.ms.fd", "/usr/share/AAVMF/AAVMF_CODE.fd",
		},
		SecureBootVars: []string{
			"/usr/share/AAVMF/AAVMF_VARS.ms.fd",
		},
		GrubTarget:        "arm64-efi",
		EFIBootFile:       "BOOTAA64.EFI",
		EFISuffix:         "aa64",
		GrubPackage:       "grub-efi-arm64-bin",
		GrubSignedPackage: "grub-efi-arm64-signed",
		KernelPackage:     "linux-image-cloud-arm64",
		RootPartType:      "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
		DiskDevice:        "virtio-blk-pci",
		TPMDevice:         "tpm-tis-device",
	},
}

// All returns every known architecture.
func All() []Arch { return append([]Arch(nil), table...) }

// Names lists the known architecture names.
func Names() []string {
	var n []string
	for _, a := range table {
		n = append(n, a.Name)
	}
	return n
}

// Lookup finds an architecture by kernel, Debian or Go name (x86_64/amd64, aarch64/arm64).
func Lookup(name string) (Arch, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, a := range table {
		if n == a.Name || n == a.Debian || n == a.GOARCH {
			return a, nil
		}
	}
	return Arch{}, fmt.Errorf("unknown architecture %q: use one of %s", name, strings.Join(Names(), ", "))
}

// Host is the architecture of the machine running the harness.
func Host() (Arch, error) { return Lookup(runtime.GOARCH) }

// Native reports whether a is the host's architecture (so KVM could run it).
func (a Arch) Native() bool { return a.GOARCH == runtime.GOARCH }

// Firmware returns the first existing UEFI code and vars images, or an error naming the
// package that provides them.
func (a Arch) Firmware() (code, vars string, err error) {
	code, vars = firstExisting(a.FirmwareCode), firstExisting(a.FirmwareVars)
	if code == "" || vars == "" {
		pkg := map[string]string{"x86_64": "ovmf", "aarch64": "qemu-efi-aarch64"}[a.Name]
		return "", "", fmt.Errorf("no UEFI firmware for %s (looked for %s): install it with `apt-get install %s` or run scripts/host-setup.sh",
			a.Name, strings.Join(a.FirmwareCode, ", "), pkg)
	}
	return code, vars, nil
}

// SecureBootFirmware returns the first existing Secure Boot code and Microsoft-keys vars
// images, or an error naming the package that provides them.
func (a Arch) SecureBootFirmware() (code, vars string, err error) {
	code, vars = firstExisting(a.SecureBootCode), firstExisting(a.SecureBootVars)
	if code == "" || vars == "" {
		pkg := map[string]string{"x86_64": "ovmf", "aarch64": "qemu-efi-aarch64"}[a.Name]
		return "", "", fmt.Errorf("no Secure Boot UEFI firmware for %s (looked for code %s and vars with Microsoft's keys %s): install it with `apt-get install %s` or run scripts/host-setup.sh",
			a.Name, strings.Join(a.SecureBootCode, ", "), strings.Join(a.SecureBootVars, ", "), pkg)
	}
	return code, vars, nil
}

func firstExisting(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
