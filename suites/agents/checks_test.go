package agents

import (
	"strings"
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
	unmet := "enabled\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\n"
	require.NoError(t, WAAgentUnit("waagent.service", "condition-unmet", unmet))
	failed := "enabled\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nConditionResult=yes\n"
	err := WAAgentUnit("waagent.service", "condition-unmet", failed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `got "ActiveState=failed ConditionResult=yes Result=exit-code"`)
	err = WAAgentUnit("waagent.service", "active", "disabled\nLoadState=loaded\nActiveState=inactive\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `is-enabled: expected "enabled", got "disabled"`)
	assert.Contains(t, err.Error(), `ActiveState: expected "active", got "inactive"`)
	// The unit file removed: systemd answers for a unit it cannot find with an inactive, unmet-
	// looking state; only LoadState tells.
	gone := "enabled\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\n"
	err = WAAgentUnit("waagent.service", "condition-unmet", gone)
	require.Error(t, err, "a unit whose file is gone must fail")
	assert.Contains(t, err.Error(), `waagent.service LoadState: expected "loaded", got "not-found"`)
}

func TestUnitCloudInitStatus(t *testing.T) {
	good := "status: done\nboot_status_code: enabled-by-generator\ndetail:\nDataSourceNoCloud [seed=/dev/vdb][dsmode=net]\nexit=0\n"
	require.NoError(t, CloudInitStatus("NoCloud", good))
	err := CloudInitStatus("NoCloud", "status: done\ndetail:\nDataSourceAzure [seed=/dev/sr0]\nerrors: ['x']\nexit=2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected DataSourceNoCloud, got "DataSourceAzure [seed=/dev/sr0]"`)
	assert.Contains(t, err.Error(), `cloud-init errors: expected none, got ["['x']"]`)
	// A multi-line error list (cloud-init 23.4+) is caught here as in the boot suite: one parser.
	multi := CloudInitStatus("NoCloud", "status: error\nerrors:\n\t- ('cc_ssh', KeyError('x'))\ndetail:\nDataSourceNoCloud [seed=/dev/vdb]\nexit=1\n")
	require.Error(t, multi)
	assert.Contains(t, multi.Error(), "cc_ssh")
	assert.Contains(t, err.Error(), `exit code: expected 0, got "2"`)
}

func TestUnitCloudInitLog(t *testing.T) {
	require.NoError(t, CloudInitLog(nil, ""))
	line := "2026-11-27 05:05:06,176 - schema.py[WARNING]: Invalid cloud-config provided"
	err := CloudInitLog(nil, line+"\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "got 1:\n"+line)
	require.NoError(t, CloudInitLog([]string{`schema\.py\[WARNING\]`}, line))
}

func TestUnitAuthorizedKeys(t *testing.T) {
	const harnessKey = "ssh-ed25519 AAAAC3Nza-harness azlvmtest@azl-vmtest"
	require.NoError(t, AuthorizedKeys("azlvmtest", harnessKey, harnessKey+"\n"))
	err := AuthorizedKeys("azlvmtest", harnessKey, harnessKey+"\nssh-rsa AAAAB3Nza-builder build@factory\n")
	require.Error(t, err, "a second key baked into the image must fail")
	assert.Contains(t, err.Error(), `expected only the harness's key, got another: "ssh-rsa AAAAB3Nza-builder build@factory"`)
	err = AuthorizedKeys("azlvmtest", harnessKey, harnessKey+"\n"+harnessKey+"\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected the harness's key once, got 2 keys")
}

func TestUnitHostKey(t *testing.T) {
	injected := "ssh-ed25519 AAAAC3Nza-injected azl-vmtest-host"
	require.NoError(t, HostKey(injected, "/etc/ssh/ssh_host_ed25519_key.pub\nssh-ed25519 AAAAC3Nza-injected azl-vmtest-host\n"))
	err := HostKey(injected, "/etc/ssh/ssh_host_ecdsa_key.pub\n/etc/ssh/ssh_host_ed25519_key.pub\nssh-ed25519 AAAAC3Nza-generated root@vm\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "ssh-ed25519 AAAAC3Nza-injected", got "ssh-ed25519 AAAAC3Nza-generated"`)
	assert.Contains(t, err.Error(), "ssh_host_ecdsa_key.pub")
}

// sshdT is an excerpt of `sshd -T` on the stand-in (OpenSSH 9.2).
const sshdT = `port 22
permitrootlogin no
pubkeyauthentication yes
passwordauthentication no
kbdinteractiveauthentication no
permitemptypasswords no
clientaliveinterval 120
`

func TestUnitSSHDConfig(t *testing.T) {
	want := map[string][]string{"passwordauthentication": {"no"}, "kbdinteractiveauthentication": {"no"},
		"permitemptypasswords": {"no"}, "permitrootlogin": {"no", "prohibit-password"}}
	require.NoError(t, SSHDConfig(want, 30, 235, sshdT))
	require.NoError(t, SSHDConfig(want, 30, 235, strings.Replace(sshdT, "permitrootlogin no", "permitrootlogin prohibit-password", 1)))
	for _, c := range []struct{ from, to, msg string }{
		{"passwordauthentication no", "passwordauthentication yes", `sshd -T passwordauthentication: expected no, got "yes"`},
		{"permitrootlogin no", "permitrootlogin yes", `sshd -T permitrootlogin: expected no or prohibit-password, got "yes"`},
		{"kbdinteractiveauthentication no", "kbdinteractiveauthentication yes", `sshd -T kbdinteractiveauthentication: expected no, got "yes"`},
		{"permitemptypasswords no", "permitemptypasswords yes", `sshd -T permitemptypasswords: expected no, got "yes"`},
		{"permitemptypasswords no\n", "", `sshd -T permitemptypasswords: expected no, got "(not printed)"`},
		{"clientaliveinterval 120", "clientaliveinterval 0", "clientaliveinterval: expected 30..235, got 0"},
	} {
		broken := strings.Replace(sshdT, c.from, c.to, 1)
		require.NotEqual(t, sshdT, broken)
		err := SSHDConfig(want, 30, 235, broken)
		require.Error(t, err, "sshd with %q must fail", c.to)
		assert.Contains(t, err.Error(), c.msg)
	}
}
