// Package storage verifies storage promises: the root filesystem, no swap on the OS disk, data
// disks hot-plugged through QMP (virtio-blk and NVMe) appear and go cleanly, the promised
// filesystems work and survive a reboot through fstab, and the NVMe timeout udev rule.
package storage

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("storage.swap", check.Probe{Name: "swaps", Cmd: "cat /proc/swaps"}, "swap active (or none) on the OS disk (`/proc/swaps`)", NoSwap),
}

// CmdFindDisk waits up to 60 s for the disk with serial to appear and prints its name.
func CmdFindDisk(serial string) string {
	return fmt.Sprintf(`for i in $(seq 240); do n=$(lsblk -dn -o NAME,SERIAL | awk '$2=="%s"{print $1}'); [ -n "$n" ] && { echo "$n"; exit 0; }; sleep 0.25; done; lsblk -dn -o NAME,SERIAL; exit 1`, serial)
}

// CmdDiskGone waits up to 60 s for the disk with serial to disappear; prints what is left.
func CmdDiskGone(serial string) string {
	return fmt.Sprintf(`for i in $(seq 240); do lsblk -dn -o SERIAL | grep -qx '%s' || exit 0; sleep 0.25; done; lsblk -dn -o NAME,SERIAL; exit 1`, serial)
}

// NoSwap checks /proc/swaps lists nothing (want=false) or something (want=true).
func NoSwap(want bool, swaps string) error {
	var active []string
	for _, l := range strings.Split(strings.TrimSpace(swaps), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			active = append(active, f[0])
		}
	}
	switch {
	case !want && len(active) > 0:
		return fmt.Errorf("swap: expected none on the OS disk, got %q", strings.Join(active, " "))
	case want && len(active) == 0:
		return fmt.Errorf("swap: expected some, got none")
	}
	return nil
}

// DiskAppeared checks the guest found the hot-plugged disk.
func DiskAppeared(serial, bus string, exit int, out string) error {
	if exit != 0 {
		return fmt.Errorf("hot-plugged %s disk %s: expected it in lsblk, got only %q", bus, serial, strings.TrimSpace(out))
	}
	return nil
}

// DiskGone checks the guest let go of the hot-unplugged disk.
func DiskGone(serial string, exit int, out string) error {
	if exit != 0 {
		return fmt.Errorf("hot-unplugged disk %s: expected it gone from lsblk, got %q", serial, strings.TrimSpace(out))
	}
	return nil
}

// Checksum compares a file's sha256 before and after (a remount or reboot).
func Checksum(what, want, got string) error {
	return check.Equal(what+" sha256", first(want), first(got))
}

// Mounted checks findmnt's "SOURCE FSTYPE" for a mount point.
func Mounted(mnt, wantFS, findmnt string) error {
	f := strings.Fields(findmnt)
	if len(f) < 2 {
		return fmt.Errorf("%s: expected a mounted %s filesystem, got nothing mounted", mnt, wantFS)
	}
	return check.Equal(mnt+" filesystem type", wantFS, f[1])
}

// NVMeRuleLine is what the udev rule sets: on which kernel names and model, which timeout.
type NVMeRuleLine struct {
	Kernel, Model string
	TimeoutMS     string
}

// ParseNVMeRule finds the rule line that assigns ATTR{queue/io_timeout} and reads its matches.
func ParseNVMeRule(content string) (NVMeRuleLine, bool) {
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || !strings.Contains(l, "ATTR{queue/io_timeout}=") {
			continue
		}
		var r NVMeRuleLine
		for _, part := range strings.Split(l, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				continue
			}
			eq := strings.HasPrefix(v, "=")
			v = strings.Trim(strings.TrimPrefix(v, "="), `"`)
			switch {
			case k == "KERNEL" && eq:
				r.Kernel = v
			case k == "ENV{ID_MODEL}" && eq:
				r.Model = v
			case k == "ATTR{queue/io_timeout}" && !eq:
				r.TimeoutMS = v
			}
		}
		return r, true
	}
	return NVMeRuleLine{}, false
}

// NVMeRule checks the installed udev rule: it sets queue/io_timeout to the profile's value, on
// NVMe disks (KERNEL=="nvme*"), of exactly the profile's model.
func NVMeRule(path, model string, timeoutMS int, content string) error {
	r, ok := ParseNVMeRule(content)
	if !ok {
		return fmt.Errorf("%s: expected a rule setting ATTR{queue/io_timeout}, got:\n%s", path, strings.TrimSpace(content))
	}
	return check.Errors(
		check.Equal(path+" KERNEL match", "nvme*", r.Kernel),
		check.Equal(path+" ENV{ID_MODEL} match", model, r.Model),
		check.Equal(path+" ATTR{queue/io_timeout}", fmt.Sprint(timeoutMS), r.TimeoutMS),
	)
}

// NVMeTimeout checks a disk's io_timeout: the rule's value on the promised model, and not the
// rule's value on any other (the rule must stay selective).
func NVMeTimeout(disk, diskModel, ruleModel string, ruleTimeout int, got string) error {
	if strings.TrimSpace(diskModel) == ruleModel {
		return check.IntEqual(fmt.Sprintf("%s (model %q) queue/io_timeout", disk, diskModel), ruleTimeout, got)
	}
	if strings.TrimSpace(got) == fmt.Sprint(ruleTimeout) {
		return fmt.Errorf("%s (model %q) queue/io_timeout: expected the default (the rule is for %q only), got %s", disk, strings.TrimSpace(diskModel), ruleModel, strings.TrimSpace(got))
	}
	return nil
}

func first(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
