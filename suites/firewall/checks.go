// Package firewall verifies the firewall policy by configuration and by traffic: the promised
// service and zone, and that a listener on an unlisted port is unreachable from outside the
// guest while SSH stays reachable, until the port is opened.
package firewall

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Commands whose output the checks read.
const (
	CmdFirewalldConf = "sudo sh -c 'grep -hE \"^(DefaultZone|FirewallBackend)=\" /etc/firewalld/firewalld.conf'"
	CmdNftTables     = "sudo nft list tables"
	CmdIptables      = "sudo iptables -S"
)

// CmdServiceActive prints is-active of a unit.
func CmdServiceActive(unit string) string { return "systemctl is-active " + unit }

// CmdZoneInfo is firewall-cmd's description of a zone.
func CmdZoneInfo(zone string) string { return "sudo firewall-cmd --info-zone=" + zone }

// ServiceActive checks a unit is active.
func ServiceActive(unit, got string) error {
	return check.Equal(unit+" state", "active", strings.TrimSpace(got))
}

// DefaultZone checks firewall-cmd --get-default-zone.
func DefaultZone(want, got string) error {
	return check.Equal("firewalld default zone", want, strings.TrimSpace(got))
}

// Zone checks --info-zone's target and services (the services exactly).
func Zone(zone, wantTarget string, wantServices []string, info string) error {
	var errs []error
	if wantTarget != "" {
		errs = append(errs, check.Equal("firewalld zone "+zone+" target", wantTarget, check.Field(info, "target")))
	}
	if len(wantServices) > 0 {
		errs = append(errs, check.Set("firewalld zone "+zone+" services", wantServices, check.Field(info, "services")))
	}
	return check.Errors(errs...)
}

// Backend checks FirewallBackend in firewalld.conf.
func Backend(want, conf string) error {
	return check.Equal("FirewallBackend (/etc/firewalld/firewalld.conf)", want, check.Field(conf, "FirewallBackend"))
}

// NftTable checks `nft list tables` has "table <want>".
func NftTable(want, tables string) error {
	for _, l := range strings.Split(tables, "\n") {
		if strings.TrimSpace(l) == "table "+want {
			return nil
		}
	}
	return fmt.Errorf("nftables: expected \"table %s\", got %q", want, strings.TrimSpace(tables))
}

// IptablesRules checks every wanted rule appears in `iptables -S`.
func IptablesRules(want []string, rules string) error {
	have := map[string]bool{}
	for _, l := range strings.Split(rules, "\n") {
		have[strings.Join(strings.Fields(l), " ")] = true
	}
	var errs []error
	for _, w := range want {
		if !have[strings.Join(strings.Fields(w), " ")] {
			errs = append(errs, fmt.Errorf("iptables -S: expected rule %q, got:\n%s", w, strings.TrimSpace(rules)))
		}
	}
	return check.Errors(errs...)
}

// Reachability is what a probe from outside the guest saw.
type Reachability struct {
	Token string // what the guest's listener sends
	Got   string // what the probe read ("" when nothing came)
	Err   error  // the probe's error, if any
}

func (r Reachability) reached() bool { return strings.TrimSpace(r.Got) == r.Token }

func (r Reachability) String() string {
	if r.reached() {
		return fmt.Sprintf("reachable (read %q)", r.Token)
	}
	if r.Err != nil {
		return fmt.Sprintf("unreachable (%v)", r.Err)
	}
	return fmt.Sprintf("unreachable (read %q)", strings.TrimSpace(r.Got))
}

// Blocked checks that a listener on an unlisted port was NOT reachable from outside. The probe
// judges by data, not by connect(): QEMU's user-net accepts on the host before the guest answers.
func Blocked(port int, r Reachability) error {
	if r.reached() {
		return fmt.Errorf("inbound TCP to unlisted port %d: expected blocked by the firewall, got %s", port, r)
	}
	return nil
}

// Reached checks that a listener was reachable (the same probe, after the port was opened):
// this shows the probe can tell the two apart.
func Reached(port int, r Reachability) error {
	if !r.reached() {
		return fmt.Errorf("inbound TCP to opened port %d: expected reachable, got %s", port, r)
	}
	return nil
}
