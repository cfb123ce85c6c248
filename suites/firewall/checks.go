// Package firewall verifies the firewall policy by configuration and by traffic: the promised
// service and zone, and that a listener on an unlisted port is unreachable from outside the
// guest while SSH stays reachable, until the port is opened.
package firewall

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Probes: the commands whose output the checks read.
var (
	probeService     = check.Probe{Name: "firewall-service", Cmd: "systemctl is-active {firewall.service}"}
	probeDefaultZone = check.Probe{Name: "firewalld-default-zone", Cmd: "sudo firewall-cmd --get-default-zone"}
	probeZone        = check.Probe{Name: "firewalld-zone", Cmd: "sudo firewall-cmd --info-zone={firewall.default_zone}"}
	probeConf        = check.Probe{Name: "firewalld-conf", Cmd: `sudo sh -c 'grep -hE "^(DefaultZone|FirewallBackend)=" /etc/firewalld/firewalld.conf'`}
	probeNft         = check.Probe{Name: "nft-tables", Cmd: "sudo nft list tables"}
	probeIptables    = check.Probe{Name: "iptables", Cmd: "sudo iptables -S"}
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("firewall.service", probeService, "the firewall service is active", ServiceActive),
	check.New("firewall.default_zone", probeDefaultZone, "firewalld's default zone", DefaultZone),
	check.New("firewall.zone_target", probeZone, "the default zone's target", ZoneTarget),
	check.New("firewall.services", probeZone, "exactly these services allowed in the default zone", ZoneServices),
	check.New("firewall.ports", probeZone, "exactly these ports open in the default zone, and no other opening (protocols, source ports, forward ports, sources, masquerading, rich rules)", ZoneOpenings),
	check.New("firewall.backend", probeConf, "FirewallBackend in firewalld.conf", Backend),
	check.New("firewall.nft_table", probeNft, "firewalld's nftables table exists", NftTable),
	check.New("firewall.iptables_rules", probeIptables, "`iptables -S` has every rule of the policy and no other inbound ACCEPT or policy", IptablesRules),
}

// ServiceActive checks `systemctl is-active` of the firewall's unit.
func ServiceActive(unit, got string) error {
	return check.Equal(unit+" state", "active", strings.TrimSpace(got))
}

// DefaultZone checks firewall-cmd --get-default-zone.
func DefaultZone(want, got string) error {
	return check.Equal("firewalld default zone", want, strings.TrimSpace(got))
}

// ZoneTarget checks --info-zone's target.
func ZoneTarget(want, info string) error {
	f := zoneFields(info)
	return check.Equal(zoneName(info)+" target", want, strings.Join(f["target"], " "))
}

// ZoneServices checks --info-zone's services: exactly the promised ones.
func ZoneServices(want []string, info string) error {
	return check.Set(zoneName(info)+" services", want, strings.Join(zoneFields(info)["services"], " "))
}

// ZoneOpenings checks --info-zone for exactly the promised ports and nothing else that lets
// traffic in (protocols, source ports, forward ports, sources, masquerading, rich rules): a
// zone that also opens 8080/tcp breaks the promise as much as a wrong service does.
func ZoneOpenings(wantPorts []string, info string) error {
	what := zoneName(info)
	f := zoneFields(info)
	errs := []error{
		check.Set(what+" ports", wantPorts, strings.Join(f["ports"], " ")),
		check.Equal(what+" masquerade", "no", strings.Join(f["masquerade"], " ")),
	}
	for _, k := range []string{"protocols", "source-ports", "forward-ports", "sources"} {
		errs = append(errs, check.Set(what+" "+k+" (the profile opens none)", nil, strings.Join(f[k], " ")))
	}
	if rules := f["rich rules"]; len(rules) > 0 {
		errs = append(errs, fmt.Errorf("%s rich rules (the profile promises none): expected none, got %q", what, strings.Join(rules, "; ")))
	}
	return check.Errors(errs...)
}

// zoneName is "firewalld zone <name>" from --info-zone's first line.
func zoneName(info string) string {
	name := ""
	if f := strings.Fields(strings.TrimSpace(info)); len(f) > 0 {
		name = f[0]
	}
	return "firewalld zone " + name
}

// zoneFields parses --info-zone: "  key: a b" lines, and for the fields firewalld prints one
// entry a line (forward-ports, rich rules) the tab-indented lines that follow.
func zoneFields(info string) map[string][]string {
	f := map[string][]string{}
	key := ""
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "    ") {
			if t := strings.TrimSpace(l); key != "" && t != "" {
				f[key] = append(f[key], t)
			}
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			key = ""
			continue
		}
		key = strings.TrimSpace(k)
		f[key] = nil
		if v = strings.TrimSpace(v); v != "" {
			if key == "rich rules" || key == "forward-ports" {
				f[key] = []string{v}
			} else {
				f[key] = strings.Fields(v)
			}
		}
	}
	return f
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

// IptablesRules checks `iptables -S` against the policy: every wanted rule present, and no
// rule beyond it that lets traffic in (an ACCEPT in INPUT or FORWARD, or a chain policy other
// than the profile's): an extra "-A INPUT -j ACCEPT" opens everything. Extra rules that only
// drop or reject are tolerated: they close, never open.
func IptablesRules(want []string, rules string) error {
	norm := func(l string) string { return strings.Join(strings.Fields(l), " ") }
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[norm(w)] = true
	}
	have := map[string]bool{}
	var errs []error
	for _, l := range strings.Split(rules, "\n") {
		if l = norm(l); l == "" {
			continue
		}
		have[l] = true
		f := strings.Fields(l)
		inbound := len(f) >= 2 && (f[1] == "INPUT" || f[1] == "FORWARD")
		opens := inbound && (f[0] == "-P" || (f[0] == "-A" || f[0] == "-I") && strings.HasSuffix(l, "-j ACCEPT"))
		if opens && !wanted[l] {
			errs = append(errs, fmt.Errorf("iptables -S: expected no inbound rule or policy beyond the profile's, got %q", l))
		}
	}
	for _, w := range want {
		if !have[norm(w)] {
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
