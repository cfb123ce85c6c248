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

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestUserDataApplied: what the harness injected is what the guest runs with.
func TestUserDataApplied(t *testing.T) {
	m := vm.Machine(t)
	m.Require(t, harness.PowerSeed)
	var ud map[string]any
	require.NoError(t, yaml.Unmarshal(m.UserData(), &ud))
	require.NoError(t, check.Equal("hostname", ud["hostname"].(string), m.MustRun(t, "hostname")))
	passwd := m.MustRun(t, "getent passwd "+m.User())
	assert.True(t, strings.HasSuffix(passwd, ":/bin/bash"), "user %s: expected shell /bin/bash, got %q", m.User(), passwd)
	require.NoError(t, AuthorizedKeys(m.User(), m.UserKey(), m.MustRun(t, "cat ~/.ssh/authorized_keys")))
	require.NoError(t, HostKey(m.HostKey(), m.MustRun(t, CmdHostKeys)))
}
