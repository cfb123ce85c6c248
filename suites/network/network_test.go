package network

import (
	"fmt"
	"os"
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

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

func TestDefaultRoute(t *testing.T) {
	m := vm.Machine(t)
	if !m.NetOpen() {
		t.Fatal("the network suite's VM must have an open network (WithNetOpen): a restricted one gets no router")
	}
	require.NoError(t, DefaultRoute(m.MustRun(t, CmdDefaultRoute)))
}

func TestOutboundTCP(t *testing.T) {
	m := vm.Machine(t)
	m.Require(t, harness.PowerHostNetwork)
	want := harness.Want[bool](t, m, "network.outbound")
	probe := m.InstallProbe(t)
	out, code := m.Output(t, fmt.Sprintf("%s connect %s:%d 10", probe, harness.HostServiceIP, hostServicePort))
	require.NoError(t, Outbound(want, hostToken, out, code))
}
