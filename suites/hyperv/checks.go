// Package hyperv verifies the Hyper-V promises. The static part runs on any hypervisor: each
// Hyper-V driver built in or a loadable module as the profile says, the drivers an Azure boot
// needs before the root filesystem built in or in the initramfs, and the kernel's config
// options. The runtime part (drivers bound to VMBus devices, the KVP daemon, the PTP clock)
// needs Hyper-V and skips elsewhere, saying so; under QEMU the guest must see the hypervisor
// the harness used.
package hyperv

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

var (
	// probeDrivers prints each driver's name and what modinfo says of its file: "(builtin)", a
	// module's path, or an error.
	probeDrivers = check.Probe{Name: "hyperv-modinfo", Cmd: `for m in {hyperv.drivers}; do echo "$m $(modinfo -F filename "$m" 2>&1 | head -1)"; done`}
	// probeInitramfs lists the kernel's built-in modules and the modules in its initramfs
	// (lsinitramfs on Debian, lsinitrd with dracut).
	probeInitramfs = check.Probe{Name: "initramfs-modules", Cmd: `k=$(uname -r); sed 's/^/builtin /' /lib/modules/$k/modules.builtin
for f in /boot/initrd.img-$k /boot/initramfs-$k.img; do [ -f "$f" ] && break; done
echo "initramfs-file $f"
if command -v lsinitramfs >/dev/null; then sudo lsinitramfs "$f"; else sudo lsinitrd "$f"; fi 2>&1 | grep -E '\.ko(\.[a-z]+)?$' | sed 's/^/initramfs /'`}
	probeConfig = check.Probe{Name: "kernel-config", Cmd: `c=/boot/config-$(uname -r); for o in {hyperv.kernel_config}; do
if [ -r "$c" ]; then grep -E "^(# )?$o[= ]" "$c"; else zcat /proc/config.gz | grep -E "^(# )?$o[= ]"; fi || echo "# $o is not set"; done`}
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("hyperv.drivers", probeDrivers, "each Hyper-V driver built in, a loadable module (`modinfo`), or either, as listed", Drivers),
	check.New("hyperv.initramfs_drivers", probeInitramfs, "each driver built in (`modules.builtin`) or in the initramfs (`lsinitramfs`/`lsinitrd`)", InitramfsDrivers),
	check.New("hyperv.kernel_config", probeConfig, "each kernel config option `y`, `m` or either (`/boot/config-*` or `/proc/config.gz`)", KernelConfig),
}

// modName is a module's canonical name: the kernel treats - and _ alike.
func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// Drivers checks how the kernel has each driver: modinfo prints "(builtin)" for a built-in
// one, a .ko path for a module, and an error for neither.
func Drivers(want map[string]string, out string) error {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		switch rest = strings.TrimSpace(rest); {
		case rest == "(builtin)":
			got[modName(name)] = "builtin"
		case strings.HasPrefix(rest, "/") && strings.Contains(rest, ".ko"):
			got[modName(name)] = "module"
		default:
			got[modName(name)] = "missing (" + rest + ")"
		}
	}
	var errs []error
	for _, d := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[modName(d)]
		if !ok {
			g = "no answer"
		}
		w := want[d]
		if g == w || (w == "present" && (g == "builtin" || g == "module")) {
			continue
		}
		if w == "present" {
			w = "built in or a module"
		}
		errs = append(errs, fmt.Errorf("Hyper-V driver %s: expected %s, got %s", d, w, g))
	}
	return check.Errors(errs...)
}

// InitramfsDrivers checks each driver is built in or in the initramfs.
func InitramfsDrivers(want []string, out string) error {
	builtin, inInitramfs := map[string]bool{}, map[string]bool{}
	file := ""
	for _, l := range strings.Split(out, "\n") {
		kind, p, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		base := p[strings.LastIndex(p, "/")+1:]
		base, _, _ = strings.Cut(base, ".ko")
		switch kind {
		case "builtin":
			builtin[modName(base)] = true
		case "initramfs":
			inInitramfs[modName(base)] = true
		case "initramfs-file":
			file = p
		}
	}
	var errs []error
	for _, d := range want {
		if !builtin[modName(d)] && !inInitramfs[modName(d)] {
			errs = append(errs, fmt.Errorf("driver %s: expected built in or in the initramfs %s (an Azure VM needs it before its root filesystem), got neither (%d modules in the initramfs)", d, file, len(inInitramfs)))
		}
	}
	return check.Errors(errs...)
}

// KernelConfig checks each option's value: "y", "m" or "y|m" (either).
func KernelConfig(want map[string]string, out string) error {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			got[k] = v
		} else if strings.HasPrefix(l, "# CONFIG_") && strings.HasSuffix(l, " is not set") {
			got[strings.TrimSuffix(strings.TrimPrefix(l, "# "), " is not set")] = "not set"
		}
	}
	var errs []error
	for _, o := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[o]
		if !ok {
			g = "no answer"
		}
		if !slices.Contains(strings.Split(want[o], "|"), g) {
			errs = append(errs, fmt.Errorf("kernel config %s: expected %s, got %s", o, want[o], g))
		}
	}
	return check.Errors(errs...)
}

// DetectVirt checks `systemd-detect-virt` names the hypervisor the harness runs the guest
// with: "kvm" under KVM, "qemu" under TCG (QEMU's own emulation).
func DetectVirt(accel, out string) error {
	want := map[string]string{"kvm": "kvm", "tcg": "qemu"}[accel]
	if want == "" {
		return fmt.Errorf("systemd-detect-virt: no expectation for accelerator %q", accel)
	}
	return check.Equal("systemd-detect-virt (QEMU with "+accel+")", want, strings.TrimSpace(out))
}

// VMBus device class IDs (the Hyper-V synthetic devices an Azure VM always has).
const (
	classSCSI    = "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f" // storvsc
	classNetwork = "f8615163-df3e-46c5-913f-f2d2f965ed0e" // netvsc
)

// VMBusDevices checks the VMBus device classes (one class_id a line, with or without braces)
// include synthetic storage and network.
func VMBusDevices(out string) error {
	classes := map[string]bool{}
	for _, l := range strings.Fields(out) {
		classes[strings.ToLower(strings.Trim(l, "{}"))] = true
	}
	var errs []error
	for _, c := range []struct{ id, what string }{{classSCSI, "synthetic SCSI (storvsc)"}, {classNetwork, "synthetic network (netvsc)"}} {
		if !classes[c.id] {
			errs = append(errs, fmt.Errorf("VMBus devices: expected a %s device (class %s), got classes %q", c.what, c.id, strings.Join(slices.Sorted(maps.Keys(classes)), ",")))
		}
	}
	return check.Errors(errs...)
}
