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
	// opts are the package's VM options: the shared VM's, and (same saved state) those of the
	// test that opens a port in its own VM.
	opts []harness.Option
)

func TestMain(m *testing.M) {
	addr, stop, err := harness.ServeToken(hostToken)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts = []harness.Option{harness.WithForward(unlistedPort, 0), harness.WithHostService(hostServicePort, addr)}
	vm = harness.NewShared(opts...)
	code := vm.Main(m)
	stop()
	os.Exit(code)
}

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestUnlistedPortBlockedUntilOpened: by traffic. A guest listener on an unlisted port is
// unreachable from outside while SSH stays reachable; once the port is opened the same probe
// reaches it, which shows the probe tells the two apart. A profile that promises no blocking
// gets the opposite check: the listener is reachable without opening anything.
func TestUnlistedPortBlockedUntilOpened(t *testing.T) {
	harness.Long(t, "its own VM, opened to traffic from the host")
	blocks := harness.Want[bool](t, vm.Machine(t), "firewall.blocks_unlisted_inbound")
	svc := harness.Want[string](t, vm.Machine(t), "firewall.service")
	m := harness.Boot(t, opts...) // its own VM: the test opens a port
	m.Require(t, harness.PowerHostNetwork)
	probe := m.InstallProbe(t)
	token := fmt.Sprintf("azl-vmtest-guest-%d", time.Now().UnixNano())
	unit := "vmtest-listen-" + fmt.Sprint(unlistedPort)
	m.MustRun(t, fmt.Sprintf("sudo systemd-run --unit=%s --collect %s listen %d %s 900", unit, probe, unlistedPort, token))
	// The listener answers inside the guest (loopback is never filtered).
	local, code := m.Output(t, fmt.Sprintf("for i in $(seq 50); do %s connect 127.0.0.1:%d 2 && exit 0; sleep 0.2; done; exit 1", probe, unlistedPort))
	require.Equal(t, 0, code, "the guest's own listener did not answer on 127.0.0.1:%d", unlistedPort)
	require.Equal(t, token, local)

	outside := fmt.Sprintf("127.0.0.1:%d", m.HostPort(unlistedPort))
	got, err := harness.ReadLine(outside, 5*time.Second)
	if !blocks {
		require.NoError(t, Reached(unlistedPort, Reachability{Token: token, Got: got, Err: err}), "the profile promises no inbound blocking")
		return
	}
	require.NoError(t, Blocked(unlistedPort, Reachability{Token: token, Got: got, Err: err}))
	_, err = m.HandshakeTime(t.Context())
	require.NoError(t, err, "SSH must stay reachable from outside")

	open := fmt.Sprintf("sudo firewall-cmd --add-port=%d/tcp", unlistedPort)
	if svc == "iptables" {
		open = fmt.Sprintf("sudo iptables -I INPUT -p tcp --dport %d -j ACCEPT", unlistedPort)
	}
	m.MustRun(t, open)
	got, err = harness.ReadLine(outside, 10*time.Second)
	require.NoError(t, Reached(unlistedPort, Reachability{Token: token, Got: got, Err: err}))
}

// TestOutboundAllowed: outbound TCP works while the firewall is up (the network suite checks
// outbound on its own; this proves the firewall's policy allows it).
func TestOutboundAllowed(t *testing.T) {
	m := vm.Machine(t)
	m.Require(t, harness.PowerHostNetwork)
	svc := harness.Want[string](t, m, "firewall.service")
	state, _ := m.Output(t, "systemctl is-active "+svc)
	require.NoError(t, ServiceActive(svc, state), "the firewall must be up while outbound is checked")
	probe := m.InstallProbe(t)
	out, code := m.Output(t, fmt.Sprintf("%s connect %s:%d 10", probe, harness.HostServiceIP, hostServicePort))
	require.Equal(t, 0, code, "outbound TCP from the guest through the firewall: expected to read %q, got %q", hostToken, out)
	require.Equal(t, hostToken, out)
}
