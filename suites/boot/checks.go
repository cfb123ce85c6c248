// Package boot verifies what an image promises about booting: OS identity, kernel, command
// line, boot mode and loader, root filesystem, a clean systemd and cloud-init boot.
//
// The checks are pure functions of guest output (unit-tested on recorded answers in
// checks_test.go); boot_test.go runs them against a real guest.
package boot

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Commands whose output the checks read.
const (
	CmdOSRelease = "cat /etc/os-release"
	CmdUname     = "uname -r"
	CmdCmdline   = "cat /proc/cmdline"
	CmdBootMode  = "test -d /sys/firmware/efi && echo uefi || echo bios"
	// One line per piece of evidence: grub.cfg files, EFI binaries that are GRUB, systemd-boot's
	// LoaderInfo variable.
	CmdBootloader = `for f in /boot/grub/grub.cfg /boot/grub2/grub.cfg /boot/efi/EFI/*/grub.cfg; do [ -f "$f" ] && echo "grubcfg $f"; done; ` +
		`sudo sh -c 'for f in /boot/efi/EFI/*/*.[Ee][Ff][Ii]; do [ -f "$f" ] && grep -qa GRUB "$f" && echo "grubefi $f"; done'; ` +
		`ls /sys/firmware/efi/efivars/LoaderInfo-* >/dev/null 2>&1 && echo "systemd-boot"; true`
	CmdBLS        = "ls -1 /boot/loader/entries/*.conf 2>/dev/null; true"
	CmdRootFS     = "findmnt -n -o FSTYPE /"
	CmdSystemd    = "systemctl is-system-running; systemctl --failed --no-legend --plain | awk '{print $1}'"
	CmdCloudInit  = "cloud-init status --long; echo exit=$?"
	CmdBootTime   = "systemd-analyze; systemd-analyze blame --no-pager | head -n 10"
	CmdJournalErr = "journalctl -b --no-pager -o cat -p warning"
)

// OSRelease checks /etc/os-release's ID and VERSION_ID.
func OSRelease(b profile.Boot, osRelease string) error {
	osr := profile.ParseOSRelease(osRelease)
	return check.Errors(
		check.Equal("os-release ID", b.OSID, osr["ID"]),
		check.Equal("os-release VERSION_ID", b.VersionID, osr["VERSION_ID"]),
	)
}

// KernelRelease checks uname -r against the profile's pattern.
func KernelRelease(pattern, uname string) error {
	return check.Match("kernel release (uname -r)", pattern, strings.TrimSpace(uname))
}

// Cmdline checks the kernel command line: the console, the required arguments, and none of the
// forbidden ones (LISA's verify_grub).
func Cmdline(console string, required, forbidden []string, cmdline string) error {
	var errs []error
	if console != "" {
		errs = append(errs, consoleArg(console, cmdline))
	}
	for _, r := range required {
		errs = append(errs, check.HasWord("kernel command line", r, cmdline))
	}
	for _, f := range forbidden {
		errs = append(errs, check.LacksWord("kernel command line", f, cmdline))
	}
	return check.Errors(errs...)
}

// consoleArg accepts console=DEV or console=DEV,options.
func consoleArg(dev, cmdline string) error {
	var got []string
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "console="); ok {
			name, _, _ := strings.Cut(v, ",")
			if name == dev {
				return nil
			}
			got = append(got, f)
		}
	}
	return fmt.Errorf("kernel command line: expected console=%s, got %q (console arguments: %q)", dev, strings.TrimSpace(cmdline), strings.Join(got, " "))
}

// BootMode checks UEFI vs BIOS.
func BootMode(want, got string) error {
	return check.Equal("boot mode", want, strings.TrimSpace(got))
}

// Bootloader reads CmdBootloader's evidence and names the loader: grub2 (a grub.cfg, and on
// UEFI an EFI binary that is GRUB) or systemd-boot.
func Bootloader(want, bootMode, evidence string) error {
	var cfg, efi, sdboot bool
	for _, l := range strings.Split(evidence, "\n") {
		switch {
		case strings.HasPrefix(l, "grubcfg "):
			cfg = true
		case strings.HasPrefix(l, "grubefi "):
			efi = true
		case strings.TrimSpace(l) == "systemd-boot":
			sdboot = true
		}
	}
	got := "unknown"
	switch {
	case sdboot:
		got = "systemd-boot"
	case cfg && (efi || strings.TrimSpace(bootMode) == "bios"):
		got = "grub2"
	}
	if got != want {
		return fmt.Errorf("boot loader: expected %q, got %q (evidence: %q)", want, got, strings.TrimSpace(evidence))
	}
	return nil
}

// BLSEntries checks that Boot Loader Specification entries exist (or do not).
func BLSEntries(want bool, listing string) error {
	n := len(strings.Fields(listing))
	if want && n == 0 {
		return fmt.Errorf("BLS entries in /boot/loader/entries: expected at least one, got none")
	}
	if !want && n > 0 {
		return fmt.Errorf("BLS entries in /boot/loader/entries: expected none, got %q", strings.TrimSpace(listing))
	}
	return nil
}

// RootFS checks the root filesystem type.
func RootFS(want, got string) error {
	return check.Equal("root filesystem type", want, strings.TrimSpace(got))
}

// SystemState checks is-system-running's answer; the output's later lines are failed units.
func SystemState(want, out string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	state := strings.TrimSpace(lines[0])
	if state == want {
		return nil
	}
	failed := strings.Join(lines[1:], " ")
	if failed == "" {
		failed = "none"
	}
	return fmt.Errorf("systemctl is-system-running: expected %q, got %q (failed units: %s)", want, state, failed)
}

// CloudInit checks `cloud-init status --long`: the status, no errors, a zero exit (the one
// parser both suites use: check.CloudInit).
func CloudInit(want, out string) error { return check.CloudInit(want, out) }
