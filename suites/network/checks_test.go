package network

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Recorded guest answers: a good one passes, a wrong one fails naming expected and actual.

func TestUnitManager(t *testing.T) {
	require.NoError(t, Manager("systemd-networkd", "systemd-networkd active\nNetworkManager inactive\n"))
	err := Manager("systemd-networkd", "systemd-networkd inactive\nNetworkManager active\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `systemd-networkd state: expected "active", got "inactive"`)
	assert.Contains(t, err.Error(), `NetworkManager state: expected not active`)
}

func TestUnitRoutable(t *testing.T) {
	require.NoError(t, Routable("eth0", "● 2: eth0\n        Link File: /usr/lib/systemd/network/99-default.link\n            State: routable (configured)\n"))
	err := Routable("eth0", "            State: degraded (configuring)\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "routable (configured)", got "degraded (configuring)"`)
}

func TestUnitDHCPAddress(t *testing.T) {
	require.NoError(t, DHCPAddress("enp0s1", "2: enp0s1    inet 10.0.2.15/24 metric 1024 brd 10.0.2.255 scope global dynamic enp0s1\\       valid_lft 86000sec"))
	err := DHCPAddress("enp0s1", "2: enp0s1    inet 10.0.2.15/24 brd 10.0.2.255 scope global enp0s1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected a dynamic (DHCP) address, got")
	assert.Contains(t, err.Error(), "10.0.2.15/24")
}

func TestUnitDefaultRoute(t *testing.T) {
	require.NoError(t, DefaultRoute("enp0s1", "default via 10.0.2.2 dev enp0s1 proto dhcp src 10.0.2.15 metric 1024"))
	err := DefaultRoute("enp0s1", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "default via <gateway> dev enp0s1", got ""`)
}

func TestUnitIPv6(t *testing.T) {
	const on = "0\n0\n2: eth0    inet6 fe80::5054:ff:fe12:3456/64 scope link \\       valid_lft forever\n"
	const off = "1\n1\n"
	require.NoError(t, IPv6(true, "eth0", on))
	require.NoError(t, IPv6(false, "eth0", off))
	err := IPv6(true, "eth0", off)
	require.Error(t, err, "IPv6 promised, off in the guest")
	assert.Contains(t, err.Error(), `net.ipv6.conf.all.disable_ipv6: expected "0", got "1"`)
	assert.Contains(t, err.Error(), "expected an fe80:: address")
	err = IPv6(false, "eth0", on)
	require.Error(t, err, "IPv6 promised off, on in the guest")
	assert.Contains(t, err.Error(), `net.ipv6.conf.eth0.disable_ipv6: expected "1", got "0"`)
	assert.Contains(t, err.Error(), "expected no IPv6 address (IPv6 is off)")
}

func TestUnitSysctls(t *testing.T) {
	want := map[string]string{"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.tcp_syncookies": "1"}
	require.NoError(t, Sysctls(want, "net.ipv4.conf.all.rp_filter = 1\nnet.ipv4.tcp_syncookies = 1\n"))
	err := Sysctls(want, "net.ipv4.conf.all.rp_filter = 2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `sysctl net.ipv4.conf.all.rp_filter: expected "1", got "2"`)
	assert.Contains(t, err.Error(), `sysctl net.ipv4.tcp_syncookies: expected "1", got nothing`)
}

func TestUnitOutbound(t *testing.T) {
	require.NoError(t, Outbound("tok", "tok\n", 0))
	err := Outbound("tok", "", 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected to read "tok" from the host's listener, got "" (exit 1)`)
}

// cloudInitNetwork is /etc/systemd/network/10-cloud-init-enp0s5.network on the stand-in
// (cloud-init 22.4's networkd renderer).
const cloudInitNetwork = `[Match]
Name=enp0s5
MACAddress=52:54:00:12:34:56

[Network]
DHCP=ipv4

[DHCP]
RouteMetric=100
UseMTU=true
`

func TestUnitNetworkFileDHCP(t *testing.T) {
	const p = "/etc/systemd/network/10-cloud-init-enp0s5.network"
	require.NoError(t, NetworkFileDHCP(p, cloudInitNetwork))
	require.NoError(t, NetworkFileDHCP(p, strings.Replace(cloudInitNetwork, "DHCP=ipv4", "DHCP=yes", 1)))
	for broken, want := range map[string]string{
		strings.Replace(cloudInitNetwork, "DHCP=ipv4", "DHCP=no", 1):                              "got no",
		strings.Replace(cloudInitNetwork, "DHCP=ipv4", "DHCP=ipv6", 1):                            "got ipv6",
		strings.Replace(cloudInitNetwork, "DHCP=ipv4", "Address=10.0.2.15/24", 1):                 "got (no DHCP= in [Network])",
		strings.Replace(cloudInitNetwork, "[Network]\nDHCP=ipv4", "[Network]\n[X]\nDHCP=ipv4", 1): "got (no DHCP= in [Network])",
	} {
		err := NetworkFileDHCP(p, broken)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "expected DHCP=yes or DHCP=ipv4 in [Network], "+want)
	}
}
