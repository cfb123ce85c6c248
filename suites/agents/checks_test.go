package agents

import (
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

func TestUnitWAAgentActive(t *testing.T) {
	unmet := fixtures.Read(t, "standin", "waagent-unit", "good-x86_64.txt")
	err := WAAgentUnderQEMU("active", unmet)
	assert.ErrorContains(t, err, `walinuxagent.service ActiveState: expected "active", got "inactive"`)
	assert.ErrorContains(t, WAAgentUnderQEMU("started", unmet), "expected condition-unmet or active")
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
	injected := "ecdsa-sha2-nistp256 AAAAE2Vj-injected azl-vmtest-host"
	require.NoError(t, HostKey(injected, "/etc/ssh/ssh_host_ecdsa_key.pub\necdsa-sha2-nistp256 AAAAE2Vj-injected azl-vmtest-host\n"))
	// cloud-init generated its own keys besides (or instead of) the injected one.
	err := HostKey(injected, "/etc/ssh/ssh_host_ecdsa_key.pub\n/etc/ssh/ssh_host_ed25519_key.pub\necdsa-sha2-nistp256 AAAAE2Vj-generated root@vm\nssh-ed25519 AAAAC3Nza-generated root@vm\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "ecdsa-sha2-nistp256 AAAAE2Vj-injected", got "ecdsa-sha2-nistp256 AAAAE2Vj-generated"`)
	assert.Contains(t, err.Error(), "ssh_host_ed25519_key.pub")
	// The harness's key type decides the file: an ed25519 key lives in ssh_host_ed25519_key.pub.
	require.NoError(t, HostKey("ssh-ed25519 AAAAC3Nza-i h", "/etc/ssh/ssh_host_ed25519_key.pub\nssh-ed25519 AAAAC3Nza-i h\n"))
}
