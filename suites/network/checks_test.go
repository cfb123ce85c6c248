package network

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

// The yes/no promises judged the other way than any profile here promises: off must be off.
func TestUnitIPv6Off(t *testing.T) {
	on := fixtures.Read(t, "standin", "ipv6", "good-x86_64.txt")
	iface, _ := cutIface(on)
	off := "iface=" + iface + "\n1\n1\n"
	require.NoError(t, IPv6(false, off))
	err := IPv6(false, on)
	require.Error(t, err, "IPv6 promised off, on in the guest")
	assert.Contains(t, err.Error(), `net.ipv6.conf.`+iface+`.disable_ipv6: expected "1", got "0"`)
	assert.Contains(t, err.Error(), "expected no IPv6 address (IPv6 is off)")
}

func TestUnitDHCPStatic(t *testing.T) {
	dynamic := fixtures.Read(t, "standin", "ipv4-addresses", "good-x86_64.txt")
	static := strings.Replace(dynamic, " dynamic", "", 1)
	require.NotEqual(t, dynamic, static)
	require.NoError(t, DHCP(false, static))
	err := DHCP(false, dynamic)
	assert.ErrorContains(t, err, "expected a static address (the profile promises no DHCP)")
}

func TestUnitDefaultRoute(t *testing.T) {
	require.NoError(t, DefaultRoute("iface=enp0s1\ndefault via 10.0.2.2 dev enp0s1 proto dhcp src 10.0.2.15 metric 1024"))
	err := DefaultRoute("iface=enp0s1\n")
	assert.ErrorContains(t, err, `expected "default via <gateway> dev enp0s1", got ""`)
}

func TestUnitOutbound(t *testing.T) {
	require.NoError(t, Outbound(true, "tok", "tok\n", 0))
	assert.ErrorContains(t, Outbound(true, "tok", "", 1), `expected to read "tok" from the host's listener, got "" (exit 1)`)
	require.NoError(t, Outbound(false, "tok", "", 1))
	assert.ErrorContains(t, Outbound(false, "tok", "tok", 0), "expected blocked (the profile promises no outbound)")
}
