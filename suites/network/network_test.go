package network

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// hostToken is what the host-side listener says; the guest must read it.
var hostToken = fmt.Sprintf("azl-vmtest-host-%d", time.Now().UnixNano())

const hostServicePort = 9000

var vm *harness.Shared

func TestMain(m *testing.M) {
	// A listener on the host that the guest reaches through QEMU (outbound test).
	addr, stop, err := harness.ServeToken(hostToken)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// An open network: QEMU's user-net then offers a DHCP router, so the default route is
	// checked (the guest itself reaches nothing on its own).
	vm = harness.NewShared(harness.WithNetOpen(), harness.WithHostService(hostServicePort, addr))
	code := vm.Main(m)
	stop()
	os.Exit(code)
}

func primary(t *testing.T, m *harness.Machine) string {
	iface := m.MustRun(t, CmdPrimaryIface)
	require.NotEmpty(t, iface, "primary interface: expected one with a global IPv4 address, got none")
	return iface
}

func TestManagedByNetworkd(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "network.manager", m.Profile().Network.Manager)
	out, _ := m.Output(t, CmdManagers)
	require.NoError(t, Manager(want, out))
	if want == "systemd-networkd" {
		iface := primary(t, m)
		status, _ := m.Output(t, CmdNetworkctl(iface))
		require.NoError(t, Routable(iface, status))
	}
}

func TestDHCPAddress(t *testing.T) {
	m := vm.Machine(t)
	iface := primary(t, m)
	require.NoError(t, DHCPAddress(iface, m.MustRun(t, CmdAddr(iface))))
}

func TestDefaultRoute(t *testing.T) {
	m := vm.Machine(t)
	if !m.NetOpen() {
		t.Fatal("the network suite's VM must have an open network (WithNetOpen): a restricted one gets no router")
	}
	iface := primary(t, m)
	require.NoError(t, DefaultRoute(iface, m.MustRun(t, CmdDefaultRoute)))
}

func TestCloudInitNetworkFile(t *testing.T) {
	m := vm.Machine(t)
	glob := harness.Want(t, m, "network.cloud_init_network_file", m.Profile().Network.CloudInitNetworkFile)
	out, _ := m.Output(t, "ls -1 "+glob+" 2>/dev/null")
	require.NotEmpty(t, strings.TrimSpace(out), "cloud-init's network file: expected a file matching %s, got none", glob)
	path := strings.Fields(out)[0]
	require.NoError(t, NetworkFileDHCP(path, m.MustRun(t, "cat "+path)))
}

func TestIPv6Enabled(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "network.ipv6", m.Profile().Network.IPv6)
	iface := primary(t, m)
	out, _ := m.Output(t, CmdIPv6(iface))
	require.NoError(t, IPv6(*want, iface, out))
}

func TestNetworkSysctls(t *testing.T) {
	m := vm.Machine(t)
	want := harness.Want(t, m, "network.sysctls", m.Profile().Network.Sysctls)
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	out, _ := m.Output(t, CmdSysctls(keys))
	require.NoError(t, Sysctls(want, out))
}

func TestOutboundTCP(t *testing.T) {
	m := vm.Machine(t)
	harness.Want(t, m, "network.outbound", m.Profile().Network.Outbound)
	probe := m.InstallProbe(t)
	out, code := m.Output(t, fmt.Sprintf("%s connect %s:%d 10", probe, harness.HostServiceIP, hostServicePort))
	require.NoError(t, Outbound(hostToken, out, code))
}
