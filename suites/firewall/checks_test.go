package firewall

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// publicZone is firewall-cmd --info-zone=public on the stand-in (firewalld 1.3).
const publicZone = `public (active)
  target: default
  icmp-block-inversion: no
  interfaces: enp0s5
  sources: 
  services: dhcpv6-client ssh
  ports: 
  protocols: 
  forward: yes
  masquerade: no
  forward-ports: 
  source-ports: 
  icmp-blocks: 
  rich rules: 
`

func TestUnitServiceActive(t *testing.T) {
	require.NoError(t, ServiceActive("firewalld", "active\n"))
	err := ServiceActive("firewalld", "inactive\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `firewalld state: expected "active", got "inactive"`)
}

func TestUnitDefaultZone(t *testing.T) {
	require.NoError(t, DefaultZone("public", "public\n"))
	err := DefaultZone("public", "trusted\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "public", got "trusted"`)
}

func TestUnitZone(t *testing.T) {
	svc := []string{"ssh", "dhcpv6-client"}
	require.NoError(t, Zone("public", "default", svc, nil, publicZone))
	for name, c := range map[string]struct{ from, to, msg string }{
		"target ACCEPT":  {"target: default", "target: ACCEPT", `target: expected "default", got "ACCEPT"`},
		"extra service":  {"services: dhcpv6-client ssh", "services: dhcpv6-client mdns ssh", `services: expected "ssh dhcpv6-client", got "dhcpv6-client mdns ssh"`},
		"ports opened":   {"ports: \n", "ports: 8080/tcp 3389/tcp\n", `ports: expected "", got "8080/tcp 3389/tcp"`},
		"protocol":       {"protocols: \n", "protocols: gre\n", `protocols (the profile opens none): expected "", got "gre"`},
		"masquerade":     {"masquerade: no", "masquerade: yes", `masquerade: expected "no", got "yes"`},
		"forward port":   {"forward-ports: \n", "forward-ports: \n\tport=2222:proto=tcp:toport=22:toaddr=\n", "forward-ports"},
		"source port":    {"source-ports: \n", "source-ports: 5353/udp\n", `source-ports (the profile opens none): expected "", got "5353/udp"`},
		"trusted source": {"sources: \n", "sources: 10.0.0.0/8\n", `sources (the profile opens none): expected "", got "10.0.0.0/8"`},
		"rich rule":      {"rich rules: \n", "rich rules: \n\trule family=\"ipv4\" port port=\"8080\" protocol=\"tcp\" accept\n", `rich rules (the profile promises none): expected none, got "rule family=\"ipv4\" port port=\"8080\" protocol=\"tcp\" accept"`},
	} {
		t.Run(name, func(t *testing.T) {
			broken := strings.Replace(publicZone, c.from, c.to, 1)
			require.NotEqual(t, publicZone, broken)
			err := Zone("public", "default", svc, nil, broken)
			require.Error(t, err, "a zone with %s must fail", name)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
	// A port the profile lists is expected, and then required.
	require.NoError(t, Zone("public", "default", svc, []string{"8080/tcp"}, strings.Replace(publicZone, "ports: \n", "ports: 8080/tcp\n", 1)))
	assert.Error(t, Zone("public", "default", svc, []string{"8080/tcp"}, publicZone))
}

func TestUnitBackend(t *testing.T) {
	require.NoError(t, Backend("nftables", "DefaultZone=public\nFirewallBackend=nftables\n"))
	err := Backend("nftables", "FirewallBackend=iptables\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "nftables", got "iptables"`)
}

func TestUnitNftTable(t *testing.T) {
	require.NoError(t, NftTable("inet firewalld", "table inet firewalld\n"))
	err := NftTable("inet firewalld", "table ip filter\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "table inet firewalld", got "table ip filter"`)
}

func TestUnitIptablesRules(t *testing.T) {
	policy := []string{"-P INPUT DROP", "-P FORWARD DROP", "-P OUTPUT DROP", "-A OUTPUT -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"}
	rules := "-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT DROP\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A OUTPUT -j ACCEPT\n"
	require.NoError(t, IptablesRules(policy, rules))
	require.NoError(t, IptablesRules(policy, rules+"-A INPUT -p tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP\n"), "a rule that only drops closes, never opens")

	err := IptablesRules(policy, strings.Replace(rules, "-P INPUT DROP", "-P INPUT ACCEPT", 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected rule "-P INPUT DROP", got:`)
	assert.Contains(t, err.Error(), `expected no inbound rule or policy beyond the profile's, got "-P INPUT ACCEPT"`)

	err = IptablesRules(policy, rules+"-A INPUT -j ACCEPT\n")
	require.Error(t, err, "an extra accept-everything rule must fail")
	assert.Contains(t, err.Error(), `expected no inbound rule or policy beyond the profile's, got "-A INPUT -j ACCEPT"`)
	err = IptablesRules(policy, rules+"-A INPUT -p tcp -m tcp --dport 3389 -j ACCEPT\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--dport 3389")
}

func TestUnitReachability(t *testing.T) {
	require.NoError(t, Blocked(8123, Reachability{Token: "tok", Err: errors.New("EOF")}))
	err := Blocked(8123, Reachability{Token: "tok", Got: "tok"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected blocked by the firewall, got reachable (read "tok")`)

	require.NoError(t, Reached(8123, Reachability{Token: "tok", Got: "tok"}))
	err = Reached(8123, Reachability{Token: "tok", Err: errors.New("i/o timeout")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected reachable, got unreachable (i/o timeout)")
}
