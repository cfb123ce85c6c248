// Package network verifies networking promises: the primary interface is managed by the
// promised service with the DHCP address cloud-init configured, a default route, IPv6 enabled,
// the network sysctls, and working outbound connections.
package network

import (
	"fmt"
	"sort"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Commands whose output the checks read.
const (
	// The primary interface: the first with a global IPv4 address.
	CmdPrimaryIface = "ip -o -4 addr show scope global | awk '{print $2; exit}'"
	CmdManagers     = "for s in systemd-networkd NetworkManager; do echo \"$s $(systemctl is-active $s)\"; done"
	CmdDefaultRoute = "ip -o -4 route show default"
)

// CmdNetworkctl is `networkctl status` of the interface (its State: line).
func CmdNetworkctl(iface string) string { return "networkctl status --no-pager " + iface }

// CmdAddr lists the interface's IPv4 addresses with flags.
func CmdAddr(iface string) string { return "ip -o -4 addr show dev " + iface }

// CmdIPv6 prints disable_ipv6 for all and the interface, then its link-local addresses.
func CmdIPv6(iface string) string {
	return fmt.Sprintf("sysctl -n net.ipv6.conf.all.disable_ipv6 net.ipv6.conf.%s.disable_ipv6; ip -o -6 addr show dev %s scope link", iface, iface)
}

// CmdSysctls prints "key = value" for each key.
func CmdSysctls(keys []string) string { return "sysctl " + strings.Join(keys, " ") }

// Manager checks that want is active and NetworkManager is not (unless it is the one wanted).
func Manager(want, out string) error {
	states := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			states[f[0]] = f[1]
		}
	}
	var errs []error
	errs = append(errs, check.Equal(want+" state", "active", states[want]))
	for svc, st := range states {
		if svc != want && st == "active" {
			errs = append(errs, fmt.Errorf("%s state: expected not active (the interface belongs to %s), got %q", svc, want, st))
		}
	}
	return check.Errors(errs...)
}

// Routable checks networkctl's view of the primary interface: routable and configured.
func Routable(iface, status string) error {
	state := check.Field(status, "State")
	if !strings.HasPrefix(state, "routable") || !strings.Contains(state, "configured") {
		return fmt.Errorf("networkctl state of %s: expected \"routable (configured)\", got %q", iface, state)
	}
	return nil
}

// DHCPAddress checks that the interface has a dynamic (DHCP) IPv4 address.
func DHCPAddress(iface, addrs string) error {
	for _, l := range strings.Split(addrs, "\n") {
		if strings.Contains(l, " inet ") && strings.Contains(l, "dynamic") {
			return nil
		}
	}
	return fmt.Errorf("IPv4 address of %s: expected a dynamic (DHCP) address, got %q", iface, strings.TrimSpace(addrs))
}

// NetworkFileDHCP checks that the systemd-networkd file cloud-init rendered turns on IPv4
// DHCP: DHCP=yes or DHCP=ipv4 in its [Network] section (DHCP=no or ipv6 is a static or
// IPv6-only NIC, not what the image promises).
func NetworkFileDHCP(path, body string) error {
	section, value := "", ""
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = l
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && section == "[Network]" && strings.TrimSpace(k) == "DHCP" {
			value = strings.TrimSpace(v)
		}
	}
	if value == "yes" || value == "ipv4" {
		return nil
	}
	if value == "" {
		value = "(no DHCP= in [Network])"
	}
	return fmt.Errorf("cloud-init's network file %s: expected DHCP=yes or DHCP=ipv4 in [Network], got %s", path, value)
}

// DefaultRoute checks there is a default IPv4 route via the interface.
func DefaultRoute(iface, routes string) error {
	if !strings.Contains(routes, "default via ") || !strings.Contains(routes, " dev "+iface) {
		return fmt.Errorf("default route: expected \"default via <gateway> dev %s\", got %q", iface, strings.TrimSpace(routes))
	}
	return nil
}

// IPv6 checks the promise both ways. Enabled: disable_ipv6 = 0 (all and the interface) and a
// link-local address. Disabled: disable_ipv6 = 1 on both and no IPv6 address at all.
func IPv6(enabled bool, iface, out string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return fmt.Errorf("IPv6 on %s: expected disable_ipv6 values, got %q", iface, out)
	}
	flag := map[bool]string{true: "0", false: "1"}[enabled]
	errs := []error{
		check.Equal("net.ipv6.conf.all.disable_ipv6", flag, strings.TrimSpace(lines[0])),
		check.Equal("net.ipv6.conf."+iface+".disable_ipv6", flag, strings.TrimSpace(lines[1])),
	}
	addrs := strings.Join(lines[2:], "\n")
	switch {
	case enabled && !strings.Contains(addrs, "inet6 fe80:"):
		errs = append(errs, fmt.Errorf("IPv6 link-local address on %s: expected an fe80:: address, got %q", iface, strings.Join(lines[2:], " ")))
	case !enabled && strings.Contains(addrs, "inet6 "):
		errs = append(errs, fmt.Errorf("IPv6 on %s: expected no IPv6 address (IPv6 is off), got %q", iface, strings.Join(lines[2:], " ")))
	}
	return check.Errors(errs...)
}

// Sysctls compares `sysctl k1 k2 ...` output with the profile's values.
func Sysctls(want map[string]string, out string) error {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), " ")
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		v, ok := got[k]
		if !ok {
			errs = append(errs, fmt.Errorf("sysctl %s: expected %q, got nothing (unknown key?)", k, want[k]))
			continue
		}
		errs = append(errs, check.Equal("sysctl "+k, want[k], v))
	}
	return check.Errors(errs...)
}

// Outbound checks that the guest received token from the host-side listener.
func Outbound(token, got string, exit int) error {
	if exit != 0 || strings.TrimSpace(got) != token {
		return fmt.Errorf("outbound TCP from the guest: expected to read %q from the host's listener, got %q (exit %d)", token, strings.TrimSpace(got), exit)
	}
	return nil
}
