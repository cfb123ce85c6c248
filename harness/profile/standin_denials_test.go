package profile

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The stand-in allows exactly one denial: systemd-tmpfiles stat-ing Debian's dnf cache (var_t).
// The same access to anything else, or another access to it, stays a failure.
func TestStandinAllowsOnlyTheDnfCacheDenial(t *testing.T) {
	p, err := Load("standin")
	require.NoError(t, err)
	allowed, err := Get[map[string]string](p, "selinux.allowed_denials")
	require.NoError(t, err)
	require.Len(t, allowed, 1)
	match := func(rec string) bool {
		for k := range allowed {
			if regexp.MustCompile(k).MatchString(rec) {
				return true
			}
		}
		return false
	}
	// Recorded in make test on aarch64.
	const seen = `type=AVC msg=audit(1795845736.680:1377): avc:  denied  { getattr } for  pid=2225 comm="systemd-tmpfile" path="/var/cache/dnf/metadata_lock.pid" dev="vda2" ino=18893 scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=unconfined_u:object_r:var_t:s0 tclass=file permissive=0`
	assert.True(t, match(seen))
	for _, other := range []string{
		`avc:  denied  { getattr } for  pid=2225 comm="systemd-tmpfile" path="/var/lib/other/x" dev="vda2" ino=1 scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=unconfined_u:object_r:var_t:s0 tclass=file permissive=0`,
		`avc:  denied  { unlink } for  pid=2225 comm="systemd-tmpfile" path="/var/cache/dnf/metadata_lock.pid" dev="vda2" ino=18893 scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=unconfined_u:object_r:var_t:s0 tclass=file permissive=0`,
		`avc:  denied  { getattr } for  pid=2225 comm="sshd" path="/var/cache/dnf/metadata_lock.pid" dev="vda2" ino=18893 scontext=system_u:system_r:sshd_t:s0 tcontext=unconfined_u:object_r:var_t:s0 tclass=file permissive=0`,
		`avc:  denied  { getattr } for  pid=2225 comm="systemd-tmpfile" path="/var/cache/dnf/x" dev="vda2" ino=18893 scontext=system_u:system_r:systemd_tmpfiles_t:s0 tcontext=system_u:object_r:shadow_t:s0 tclass=file permissive=0`,
	} {
		assert.False(t, match(other), other)
	}
}
