package agents

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

func TestWAAgentVersion(t *testing.T) {
	m := vm.Machine(t)
	min := harness.Want(t, m, "agents.waagent_min_version", m.Profile().Agents.WAAgentMinVersion)
	out, _ := m.Output(t, CmdWAAgentVersion)
	require.NoError(t, WAAgentVersion(min, out))
}

func TestWAAgentUnitState(t *testing.T) {
	m := vm.Machine(t)
	a := m.Profile().Agents
	unit := harness.Want(t, m, "agents.waagent_unit", a.WAAgentUnit)
	want := harness.Want(t, m, "agents.waagent_under_qemu", a.WAAgentUnderQEMU)
	out, _ := m.Output(t, CmdUnitState(unit))
	require.NoError(t, WAAgentUnit(unit, want, out))
}

func TestCloudInitDoneWithDatasource(t *testing.T) {
	m := vm.Machine(t)
	ds := harness.Want(t, m, "agents.cloud_init_datasource", m.Profile().Agents.CloudInitDatasource)
	out, _ := m.Output(t, CmdCloudInit)
	require.NoError(t, CloudInitStatus(ds, out))
}

func TestCloudInitLogClean(t *testing.T) {
	m := vm.Machine(t)
	// An empty allow-list is an expectation too: no WARNING/ERROR line at all.
	harness.SkipUnpromised(t, m, "agents.cloud_init_log_allow")
	require.NoError(t, CloudInitLog(m.Profile().Agents.CloudInitLogAllow, m.MustRun(t, CmdCloudInitLog)))
}

// TestUserDataApplied: what the harness injected is what the guest runs with.
func TestUserDataApplied(t *testing.T) {
	m := vm.Machine(t)
	var ud map[string]any
	require.NoError(t, yaml.Unmarshal(m.UserData(), &ud))
	require.NoError(t, check.Equal("hostname", ud["hostname"].(string), m.MustRun(t, "hostname")))
	passwd := m.MustRun(t, "getent passwd "+m.User())
	assert.True(t, strings.HasSuffix(passwd, ":/bin/bash"), "user %s: expected shell /bin/bash, got %q", m.User(), passwd)
	require.NoError(t, AuthorizedKeys(m.User(), m.UserKey(), m.MustRun(t, "cat ~/.ssh/authorized_keys")))
	require.NoError(t, HostKey(m.HostKey(), m.MustRun(t, CmdHostKeys)))
}

func TestSSHDEffectiveConfig(t *testing.T) {
	m := vm.Machine(t)
	a := m.Profile().Agents
	settings := harness.Want(t, m, "agents.sshd", a.SSHD)
	max := harness.Want(t, m, "agents.client_alive_max", a.ClientAliveMax)
	require.NoError(t, SSHDConfig(settings, a.ClientAliveMin, max, m.MustRun(t, CmdSSHDConfig)))
}
