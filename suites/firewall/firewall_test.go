package firewall

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// unlistedPort is a port no profile allows; it is forwarded from the host so a probe from
// outside the guest can try it.
const unlistedPort = 8123

const hostServicePort = 9000

var (
	hostToken = fmt.Sprintf("azl-vmtest-host-%d", time.Now().UnixNano())
	vm        *harness.Shared
)

func TestMain(m *testing.M) {
	addr, stop, err := harness.ServeToken(hostToken)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vm = harness.NewShared(harness.WithForward(unlistedPort, 0), harness.WithHostService(hostServicePort, addr))
	code := vm.Main(m)
	stop()
	os.Exit(code)
}

func TestFirewallServiceActive(t *testing.T) {
	m := vm.Machine(t)
	svc := harness.Want(t, m, "firewall.service", m.Profile().Firewall.Service)
	out, _ := m.Output(t, CmdServiceActive(svc))
	require.NoError(t, ServiceActive(svc, out))
}

func TestDefaultZone(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "firewall.default_zone", m.Profile().Firewall.DefaultZone)
	out, _ := m.Output(t, "sudo firewall-cmd --get-default-zone")
	require.NoError(t, DefaultZone(want, out))
}

func TestZoneTargetAndServices(t *testing.T) {
	m := vm.Machine(t)
	fw := m.Profile().Firewall
	zone := harness.Want(t, m, "firewall.default_zone", fw.DefaultZone)
	target := harness.Want(t, m, "firewall.zone_target", fw.ZoneTarget)
	services := harness.Want(t, m, "firewall.services", fw.Services)
	// Ports: exactly the profile's (none, unless it lists some).
	harness.SkipUnpromised(t, m, "firewall.ports")
	require.NoError(t, Zone(zone, target, services, fw.Ports, m.MustRun(t, CmdZoneInfo(zone))))
}

func TestBackendNftables(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "firewall.backend", m.Profile().Firewall.Backend)
	require.NoError(t, Backend(want, m.MustRun(t, CmdFirewalldConf)))
}

func TestNftTable(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "firewall.nft_table", m.Profile().Firewall.NftTable)
	require.NoError(t, NftTable(want, m.MustRun(t, CmdNftTables)))
}

func TestIptablesPolicy(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "firewall.iptables_rules", m.Profile().Firewall.IptablesRules)
	require.NoError(t, IptablesRules(want, m.MustRun(t, CmdIptables)))
}

// TestUnlistedPortBlockedUntilOpened: by traffic. A guest listener on an unlisted port is
// unreachable from outside while SSH stays reachable; once the port is opened the same probe
// reaches it, which shows the probe tells the two apart.
func TestUnlistedPortBlockedUntilOpened(t *testing.T) {
	m := vm.Machine(t)
	fw := m.Profile().Firewall
	harness.Want(t, m, "firewall.blocks_unlisted_inbound", fw.BlocksUnlistedInbound)
	svc := harness.Want(t, m, "firewall.service", fw.Service)
	probe := m.InstallProbe(t)
	token := fmt.Sprintf("azl-vmtest-guest-%d", time.Now().UnixNano())
	unit := "vmtest-listen-" + fmt.Sprint(unlistedPort)
	m.MustRun(t, fmt.Sprintf("sudo systemd-run --unit=%s --collect %s listen %d %s 900", unit, probe, unlistedPort, token))
	t.Cleanup(func() { m.Output(t, "sudo systemctl stop "+unit) })
	// The listener answers inside the guest (loopback is never filtered).
	local, code := m.Output(t, fmt.Sprintf("for i in $(seq 50); do %s connect 127.0.0.1:%d 2 && exit 0; sleep 0.2; done; exit 1", probe, unlistedPort))
	require.Equal(t, 0, code, "the guest's own listener did not answer on 127.0.0.1:%d", unlistedPort)
	require.Equal(t, token, local)

	outside := fmt.Sprintf("127.0.0.1:%d", m.HostPort(unlistedPort))
	got, err := harness.ReadLine(outside, 5*time.Second)
	require.NoError(t, Blocked(unlistedPort, Reachability{Token: token, Got: got, Err: err}))
	_, err = m.HandshakeTime(t.Context())
	require.NoError(t, err, "SSH must stay reachable from outside")

	open, closeCmd := fmt.Sprintf("sudo firewall-cmd --add-port=%d/tcp", unlistedPort), fmt.Sprintf("sudo firewall-cmd --remove-port=%d/tcp", unlistedPort)
	if svc == "iptables" {
		rule := fmt.Sprintf("INPUT -p tcp --dport %d -j ACCEPT", unlistedPort)
		open, closeCmd = "sudo iptables -I "+rule, "sudo iptables -D "+rule
	}
	m.MustRun(t, open)
	t.Cleanup(func() { m.Output(t, closeCmd) })
	got, err = harness.ReadLine(outside, 10*time.Second)
	require.NoError(t, Reached(unlistedPort, Reachability{Token: token, Got: got, Err: err}))
}

// TestOutboundAllowed: outbound TCP works while the firewall is up (the network suite checks
// outbound on its own; this proves the firewall's policy allows it).
func TestOutboundAllowed(t *testing.T) {
	m := vm.Machine(t)
	svc := harness.Want(t, m, "firewall.service", m.Profile().Firewall.Service)
	unit := map[string]string{"iptables": "iptables.service"}[svc]
	if unit == "" {
		unit = svc + ".service"
	}
	state, _ := m.Output(t, CmdServiceActive(unit))
	require.NoError(t, ServiceActive(unit, state), "the firewall must be up while outbound is checked")
	probe := m.InstallProbe(t)
	out, code := m.Output(t, fmt.Sprintf("%s connect %s:%d 10", probe, harness.HostServiceIP, hostServicePort))
	require.Equal(t, 0, code, "outbound TCP from the guest through the firewall: expected to read %q, got %q", hostToken, out)
	require.Equal(t, hostToken, out)
}
