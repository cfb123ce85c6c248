package avc

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Command's output on the stand-in before its policy module (recorded, permissive): one record
// in the kernel log (before auditd started) and auditd's, one of them in both.
const recorded = `type=AVC msg=audit(1795803760.352:47): avc:  denied  { write } for  pid=450 comm="sfdisk" path="/var/tmp/cloud-init/tmpa5omxvt4/growpart/growpart.3XhD9d/tmp.out" dev="vda2" ino=17258 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:initrc_tmp_t:s0 tclass=file permissive=1
type=AVC msg=audit(1795803766.361:62): avc:  denied  { read } for  pid=483 comm="sshd" name="authorized_keys" dev="vda2" ino=17264 scontext=system_u:system_r:sshd_t:s0 tcontext=system_u:object_r:user_home_dir_t:s0 tclass=file permissive=1
type=USER_AVC msg=audit(1795803770.100:70): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { status } for auid=n/a uid=0 gid=0 cmdline="" scontext=system_u:system_r:init_t:s0 tcontext=system_u:system_r:init_t:s0 tclass=system permissive=1'
type=1400 audit(1795803730.208:3): avc:  denied  { write } for  pid=183 comm="mkdir" name="/" dev="tmpfs" ino=1 scontext=system_u:system_r:systemd_generator_t:s0 tcontext=system_u:object_r:var_run_t:s0 tclass=dir permissive=1
type=1400 audit(1795803760.352:47): avc:  denied  { write } for  pid=450 comm="sfdisk" path="/var/tmp/cloud-init/tmpa5omxvt4/growpart/growpart.3XhD9d/tmp.out" dev="vda2" ino=17258 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:initrc_tmp_t:s0 tclass=file permissive=1
type=1401 audit(1795803771.000:90): op=security_compute_av reason=bounds scontext=system_u:system_r:a_t:s0 tcontext=system_u:object_r:b_t:s0 tclass=file
`

func TestUnitParse(t *testing.T) {
	recs := Parse(recorded + "type=SYSCALL msg=audit(1795803760.352:47): arch=c000003e\nnoise\n")
	require.Len(t, recs, 5, "the record in both logs counts once; other record types are not denials")
	assert.Equal(t, "AVC", recs[0].Type)
	assert.Equal(t, "audit(1795803760.352:47)", recs[0].ID)
	assert.Equal(t, "USER_AVC", recs[2].Type)
	assert.Equal(t, "AVC", recs[3].Type, "kernel log type 1400 is an AVC")
	assert.Equal(t, "SELINUX_ERR", recs[4].Type)
}

// A test answers only for records it has not seen, less allowed and expected ones.
func TestUnitDenials(t *testing.T) {
	recs := Parse(recorded)
	seen := map[string]bool{recs[0].Key(): true}
	bad, err := Denials(recs, seen, map[string]string{`comm="mkdir".*systemd_generator_t`: "cloud-init's generator (reason)"},
		[]*regexp.Regexp{regexp.MustCompile(`authorized_keys.*sshd_t`)})
	require.NoError(t, err)
	require.Len(t, bad, 2)
	assert.Equal(t, "USER_AVC", bad[0].Type)
	assert.Equal(t, "SELINUX_ERR", bad[1].Type)
	msg := Report(bad, 1)
	assert.Contains(t, msg, "SELinux denials: expected none during the test, got 2")
	assert.Contains(t, msg, "tclass=system permissive=1")
	assert.Contains(t, msg, "... and 1 more")

	_, err = Denials(recs, nil, map[string]string{"(": "broken"}, nil)
	assert.ErrorContains(t, err, `selinux.allowed_denials: "(" is not a regular expression`)

	none, err := Denials(nil, nil, nil, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// LogsScript's output, recorded on the x86-64 stand-in (enforcing) right after Command's
// (testdata/command-standin-x86_64.txt) and after two denied runcon transitions: split on the
// host, it gives the kernel log and exactly the records Command printed.
func TestUnitSplitLogs(t *testing.T) {
	logs, err := os.ReadFile("testdata/logs-standin-x86_64.txt")
	require.NoError(t, err)
	command, err := os.ReadFile("testdata/command-standin-x86_64.txt")
	require.NoError(t, err)
	dmesg, denials, ok := SplitLogs(string(logs))
	require.True(t, ok)
	assert.Contains(t, dmesg, "Linux version")
	assert.NotContains(t, dmesg, Separator)
	assert.NotContains(t, dmesg, "type=AVC", "auditd's records are not part of the kernel log")
	require.Len(t, Parse(string(command)), 2)
	assert.Equal(t, Parse(string(command)), Parse(denials))

	// A record the kernel logged itself (before auditd ran) is taken from the kernel log, as
	// Command's grep does.
	kernel := "[   12.345678] audit: type=1400 audit(1795803730.208:3): avc:  denied  { write } for  pid=183 comm=\"mkdir\" name=\"/\" scontext=system_u:system_r:systemd_generator_t:s0 tcontext=system_u:object_r:var_run_t:s0 tclass=dir permissive=1\n"
	_, denials, ok = SplitLogs(kernel + string(logs))
	require.True(t, ok)
	recs := Parse(denials)
	require.Len(t, recs, 3)
	assert.Equal(t, "audit(1795803730.208:3)", recs[2].ID)
	assert.Equal(t, "AVC", recs[2].Type)

	// Output without the separator (sudo failed, or not LogsScript's) is not split.
	_, denials, ok = SplitLogs("sudo: a password is required\n")
	assert.False(t, ok)
	assert.Empty(t, denials)
}
