package firewall

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

// The zone's other ways in, one at a time, each named in the message.
func TestUnitZone(t *testing.T) {
	publicZone := fixtures.Read(t, "standin", "firewalld-zone", "good-x86_64.txt")
	svc := []string{"ssh", "dhcpv6-client"}
	require.NoError(t, ZoneTarget("default", publicZone))
	require.NoError(t, ZoneServices(svc, publicZone))
	require.NoError(t, ZoneOpenings(nil, publicZone))
	openings := func(s string) error { return ZoneOpenings(nil, s) }
	for name, c := range map[string]struct {
		from, to, msg string
		judge         func(string) error
	}{
		"target ACCEPT":  {"target: default", "target: ACCEPT", `firewalld zone public target: expected "default", got "ACCEPT"`, func(s string) error { return ZoneTarget("default", s) }},
		"extra service":  {"services: dhcpv6-client ssh", "services: dhcpv6-client mdns ssh", `services: expected "ssh dhcpv6-client", got "dhcpv6-client mdns ssh"`, func(s string) error { return ZoneServices(svc, s) }},
		"ports opened":   {"ports: \n", "ports: 8080/tcp 3389/tcp\n", `ports: expected "", got "8080/tcp 3389/tcp"`, openings},
		"protocol":       {"protocols: \n", "protocols: gre\n", `protocols (the profile opens none): expected "", got "gre"`, openings},
		"masquerade":     {"masquerade: no", "masquerade: yes", `masquerade: expected "no", got "yes"`, openings},
		"forward port":   {"forward-ports: \n", "forward-ports: \n\tport=2222:proto=tcp:toport=22:toaddr=\n", "forward-ports", openings},
		"source port":    {"source-ports: \n", "source-ports: 5353/udp\n", `source-ports (the profile opens none): expected "", got "5353/udp"`, openings},
		"trusted source": {"sources: \n", "sources: 10.0.0.0/8\n", `sources (the profile opens none): expected "", got "10.0.0.0/8"`, openings},
		"rich rule":      {"rich rules: \n", "rich rules: \n\trule family=\"ipv4\" port port=\"8080\" protocol=\"tcp\" accept\n", `rich rules (the profile promises none): expected none, got "rule family=\"ipv4\" port port=\"8080\" protocol=\"tcp\" accept"`, openings},
	} {
		t.Run(name, func(t *testing.T) {
			broken := strings.Replace(publicZone, c.from, c.to, 1)
			require.NotEqual(t, publicZone, broken)
			err := c.judge(broken)
			require.Error(t, err, "a zone with %s must fail", name)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
	// A port the profile lists is expected, and then required.
	require.NoError(t, ZoneOpenings([]string{"8080/tcp"}, strings.Replace(publicZone, "ports: \n", "ports: 8080/tcp\n", 1)))
	assert.Error(t, ZoneOpenings([]string{"8080/tcp"}, publicZone))
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
