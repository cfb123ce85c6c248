package firewall

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const publicZone = `public (active)
  target: default
  icmp-block-inversion: no
  interfaces: enp0s1
  sources: 
  services: dhcpv6-client ssh
  ports: 
  protocols: 
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
	require.NoError(t, Zone("public", "default", []string{"ssh", "dhcpv6-client"}, publicZone))
	open := "public (active)\n  target: ACCEPT\n  services: dhcpv6-client mdns ssh\n"
	err := Zone("public", "default", []string{"dhcpv6-client", "ssh"}, open)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `target: expected "default", got "ACCEPT"`)
	assert.Contains(t, err.Error(), `services: expected "dhcpv6-client ssh", got "dhcpv6-client mdns ssh"`)
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
	rules := "-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT DROP\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A OUTPUT -j ACCEPT\n"
	require.NoError(t, IptablesRules([]string{"-P INPUT DROP", "-A OUTPUT -j ACCEPT"}, rules))
	err := IptablesRules([]string{"-P INPUT DROP"}, "-P INPUT ACCEPT\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected rule "-P INPUT DROP", got:`)
	assert.Contains(t, err.Error(), "-P INPUT ACCEPT")
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
