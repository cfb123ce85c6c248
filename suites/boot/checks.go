// Package boot verifies what an image promises about booting: OS identity, kernel, command
// line, boot mode and loader, root filesystem, a clean systemd and cloud-init boot.
//
// The checks are pure functions of guest output (unit-tested on recorded answers in
// checks_test.go); boot_test.go runs them against a real guest.
package boot

import (
	"fmt"
	"sort"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Probes: the commands whose output the checks read.
var (
	probeOSRelease = check.Probe{Name: "os-release", Cmd: "cat /etc/os-release"}
	probeUname     = check.Probe{Name: "uname-r", Cmd: "uname -r"}
	// The architecture first: the console device the profile promises depends on it.
	probeCmdline = check.Probe{Name: "cmdline", Cmd: `echo "arch=$(uname -m)"; cat /proc/cmdline`}
	// The boot mode, then one line per piece of evidence of the loader: grub.cfg files, EFI
	// binaries that are GRUB, systemd-boot's LoaderInfo variable.
	probeLoader = check.Probe{Name: "boot-loader", Cmd: `test -d /sys/firmware/efi && echo uefi || echo bios; ` +
		`for f in /boot/grub/grub.cfg /boot/grub2/grub.cfg /boot/efi/EFI/*/grub.cfg; do [ -f "$f" ] && echo "grubcfg $f"; done; ` +
		`sudo sh -c 'for f in /boot/efi/EFI/*/*.[Ee][Ff][Ii]; do [ -f "$f" ] && grep -qa GRUB "$f" && echo "grubefi $f"; done'; ` +
		`ls /sys/firmware/efi/efivars/LoaderInfo-* >/dev/null 2>&1 && echo "systemd-boot"; true`}
	probeBLS       = check.Probe{Name: "bls-entries", Cmd: "ls -1 /boot/loader/entries/*.conf 2>/dev/null; true"}
	probeRootFS    = check.Probe{Name: "root-fs", Cmd: "findmnt -n -o FSTYPE /"}
	probeSystemd   = check.Probe{Name: "system-state", Cmd: "systemctl is-system-running; systemctl --failed --no-legend --plain | awk '{print $1}'"}
	probeCloudInit = check.Probe{Name: "cloud-init-status", Cmd: "cloud-init status --long; echo exit=$?"}
)

// CmdBootTime is recorded with the boot's console check (a record: timings vary with the
// accelerator and the host's load).
const CmdBootTime = "systemd-analyze; systemd-analyze blame --no-pager | head -n 10"

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("boot.os_id", probeOSRelease, "`/etc/os-release` ID", OSID),
	check.New("boot.version_id", probeOSRelease, "`/etc/os-release` VERSION_ID", VersionID),
	check.New("boot.kernel_release", probeUname, "`uname -r` matches the pattern", KernelRelease),
	check.New("boot.console", probeCmdline, "`console=<dev>` on the kernel command line for the architecture", Console),
	check.New("boot.cmdline_required", probeCmdline, "these kernel arguments present", CmdlineRequired),
	check.New("boot.cmdline_forbidden", probeCmdline, "none of these kernel arguments (LISA's verify_grub list)", CmdlineForbidden),
	check.New("boot.boot_mode", probeLoader, "UEFI (`/sys/firmware/efi`) or BIOS", BootMode),
	check.New("boot.bootloader", probeLoader, "GRUB2 (a grub.cfg and, on UEFI, a GRUB EFI binary) or systemd-boot", Bootloader),
	check.New("boot.bls_entries", probeBLS, "`/boot/loader/entries/*.conf` present, or none", BLSEntries),
	check.New("boot.root_fs", probeRootFS, "type of `/`", RootFS),
	check.New("boot.system_state", probeSystemd, "`systemctl is-system-running`, failed units named", SystemState),
	check.New("boot.cloud_init_status", probeCloudInit, "`cloud-init status --long`: this status, no errors, exit 0", check.CloudInit),
}

// OSID checks /etc/os-release's ID.
func OSID(want, osRelease string) error {
	return check.Equal("os-release ID", want, profile.ParseOSRelease(osRelease)["ID"])
}

// VersionID checks /etc/os-release's VERSION_ID.
func VersionID(want, osRelease string) error {
	return check.Equal("os-release VERSION_ID", want, profile.ParseOSRelease(osRelease)["VERSION_ID"])
}

// KernelRelease checks uname -r against the profile's pattern.
func KernelRelease(pattern, uname string) error {
	return check.Match("kernel release (uname -r)", pattern, strings.TrimSpace(uname))
}

// splitArch reads probeCmdline's output: "arch=<uname -m>", then the command line.
func splitArch(out string) (arch, cmdline string) {
	first, rest, _ := strings.Cut(out, "\n")
	if a, ok := strings.CutPrefix(first, "arch="); ok {
		return strings.TrimSpace(a), strings.TrimSpace(rest)
	}
	return "", strings.TrimSpace(out)
}

// Console checks console=<dev> for the guest's architecture (the profile maps arch to device).
func Console(want map[string]string, out string) error {
	arch, cmdline := splitArch(out)
	dev, ok := want[arch]
	if !ok {
		return fmt.Errorf("kernel command line: expected an architecture the profile names a console for (%s), got %q", strings.Join(mapKeys(want), ", "), arch)
	}
	return consoleArg(dev, cmdline)
}

// CmdlineRequired checks every required argument is on the command line.
func CmdlineRequired(required []string, out string) error {
	_, cmdline := splitArch(out)
	var errs []error
	for _, r := range required {
		errs = append(errs, check.HasWord("kernel command line", r, cmdline))
	}
	return check.Errors(errs...)
}

// CmdlineForbidden checks none of the forbidden arguments is (LISA's verify_grub).
func CmdlineForbidden(forbidden []string, out string) error {
	_, cmdline := splitArch(out)
	var errs []error
	for _, f := range forbidden {
		errs = append(errs, check.LacksWord("kernel command line", f, cmdline))
	}
	return check.Errors(errs...)
}

func mapKeys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
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

// BootMode checks UEFI vs BIOS (the loader probe's first line).
func BootMode(want, out string) error {
	mode, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return check.Equal("boot mode", want, strings.TrimSpace(mode))
}

// Bootloader reads the loader probe (the boot mode, then the evidence) and names the loader:
// grub2 (a grub.cfg, and on UEFI an EFI binary that is GRUB) or systemd-boot.
func Bootloader(want, out string) error {
	mode, evidence, _ := strings.Cut(strings.TrimSpace(out), "\n")
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
	case cfg && (efi || strings.TrimSpace(mode) == "bios"):
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
