package selinux

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

// The stand-in's enforcing answer fails a profile that promises SELinux disabled (3.0's
// default), and a disabled guest's answer passes it.
func TestUnitModeDisabled(t *testing.T) {
	assert.ErrorContains(t, Mode("disabled", fixtures.Read(t, "standin", "selinux-status", "good-x86_64.txt")), `getenforce: expected "disabled", got "enforcing"`)
	require.NoError(t, Mode("disabled", "getenforce=Disabled\nlsm=lockdown,capability,landlock,yama,apparmor,bpf\nSELinux status:                 disabled\n"))
}

// The behaviour test's judge, on the records the stand-in logged (enforcing) and their
// permissive twin.
func TestUnitEnforced(t *testing.T) {
	const denied = `type=AVC msg=audit(1795804059.095:113): avc:  denied  { read } for  pid=600 comm="sshd" name="authorized_keys" dev="vda2" ino=17316 scontext=system_u:system_r:sshd_t:s0 tcontext=system_u:object_r:user_home_dir_t:s0 tclass=file permissive=0`
	const allowed = `type=AVC msg=audit(1795804059.095:113): avc:  denied  { read } for  pid=600 comm="sshd" name="authorized_keys" dev="vda2" ino=17316 scontext=system_u:system_r:sshd_t:s0 tcontext=system_u:object_r:user_home_dir_t:s0 tclass=file permissive=1`
	require.NoError(t, Enforced("enforcing", 255, denied))
	require.NoError(t, Enforced("permissive", 0, allowed))
	assert.ErrorContains(t, Enforced("enforcing", 0, allowed), "expected refused (SELinux enforcing), got a shell")
	assert.ErrorContains(t, Enforced("enforcing", 0, allowed), "with permissive=0")
	assert.ErrorContains(t, Enforced("enforcing", 255, ""), `expected sshd_t's AVC on authorized_keys with permissive=0, got ""`)
	assert.ErrorContains(t, Enforced("permissive", 255, denied), "expected allowed (SELinux permissive), got exit 255")
	assert.ErrorContains(t, Enforced("disabled", 0, ""), "is not enforcing or permissive")
}

// Only the daemon (parent PID 1) is judged: sshd's per-login child in the user's domain is by
// design, on the stand-in and on a Fedora-style policy alike.
func TestUnitDomainsJudgeTheDaemon(t *testing.T) {
	good := fixtures.Read(t, "standin", "domains", "good-x86_64.txt")
	want := map[string]string{"sshd": "sshd_t"}
	require.NoError(t, Domains(want, good+"\nunconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023   612 sshd\n"))
	assert.ErrorContains(t, Domains(want, "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023   612 sshd\n"), "expected sshd_t, got no sshd process started by systemd")
}
