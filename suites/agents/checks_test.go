package agents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitWAAgentVersion(t *testing.T) {
	require.NoError(t, WAAgentVersion("2.2.53.1", "WALinuxAgent-2.15.0.1 running on azurelinux 4.0\nPython: 3.12.9\nGoal state agent: 2.15.0.1\n"))
	require.NoError(t, WAAgentVersion("2.2.53.1", "WALinuxAgent-2.7.3.0 running on debian 12\n"))
	err := WAAgentVersion("2.2.53.1", "WALinuxAgent-2.2.45 running on azurelinux 3.0\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected >= 2.2.53.1, got 2.2.45")
	err = WAAgentVersion("2.2.53.1", "bash: waagent: command not found")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `got "bash: waagent: command not found"`)
}

func TestUnitWAAgentUnit(t *testing.T) {
	unmet := "enabled\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\n"
	require.NoError(t, WAAgentUnit("waagent.service", "condition-unmet", unmet))
	failed := "enabled\nActiveState=failed\nSubState=failed\nResult=exit-code\nConditionResult=yes\n"
	err := WAAgentUnit("waagent.service", "condition-unmet", failed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `got "ActiveState=failed ConditionResult=yes Result=exit-code"`)
	err = WAAgentUnit("waagent.service", "active", "disabled\nActiveState=inactive\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `is-enabled: expected "enabled", got "disabled"`)
	assert.Contains(t, err.Error(), `ActiveState: expected "active", got "inactive"`)
}

func TestUnitCloudInitStatus(t *testing.T) {
	good := "status: done\nboot_status_code: enabled-by-generator\ndetail:\nDataSourceNoCloud [seed=/dev/vdb][dsmode=net]\nexit=0\n"
	require.NoError(t, CloudInitStatus("NoCloud", good))
	err := CloudInitStatus("NoCloud", "status: done\ndetail:\nDataSourceAzure [seed=/dev/sr0]\nerrors: ['x']\nexit=2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected DataSourceNoCloud, got "DataSourceAzure [seed=/dev/sr0]"`)
	assert.Contains(t, err.Error(), "cloud-init errors: expected none, got ['x']")
	assert.Contains(t, err.Error(), `exit code: expected "0", got "2"`)
}

func TestUnitCloudInitLog(t *testing.T) {
	require.NoError(t, CloudInitLog(nil, ""))
	line := "2026-11-27 05:05:06,176 - schema.py[WARNING]: Invalid cloud-config provided"
	err := CloudInitLog(nil, line+"\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "got 1:\n"+line)
	require.NoError(t, CloudInitLog([]string{`schema\.py\[WARNING\]`}, line))
}

func TestUnitHostKey(t *testing.T) {
	injected := "ssh-ed25519 AAAAC3Nza-injected azl-vmtest-host"
	require.NoError(t, HostKey(injected, "/etc/ssh/ssh_host_ed25519_key.pub\nssh-ed25519 AAAAC3Nza-injected azl-vmtest-host\n"))
	err := HostKey(injected, "/etc/ssh/ssh_host_ecdsa_key.pub\n/etc/ssh/ssh_host_ed25519_key.pub\nssh-ed25519 AAAAC3Nza-generated root@vm\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "ssh-ed25519 AAAAC3Nza-injected", got "ssh-ed25519 AAAAC3Nza-generated"`)
	assert.Contains(t, err.Error(), "ssh_host_ecdsa_key.pub")
}

func TestUnitSSHDConfig(t *testing.T) {
	require.NoError(t, SSHDConfig("no", 30, 235, "port 22\npasswordauthentication no\nclientaliveinterval 120\n"))
	err := SSHDConfig("no", 30, 235, "passwordauthentication yes\nclientaliveinterval 0\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `passwordauthentication: expected "no", got "yes"`)
	assert.Contains(t, err.Error(), "clientaliveinterval: expected 30..235, got 0")
}
