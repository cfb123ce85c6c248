package selinux

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/avc"
)

// One VM for the read-only checks.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// The guest logs in to its own sshd as a second user whose authorized_keys is pinned to the
// guest's host key; the login is tried with the file labelled user_home_dir_t (the classic
// mislabel after copying a key in by hand), then after restorecon.
const (
	denyUser  = "vmtestdeny"
	denySetup = `set -e
id ` + denyUser + ` >/dev/null 2>&1 || useradd -m ` + denyUser + `
d=/home/` + denyUser + `/.ssh; mkdir -p $d /root/vmtest-deny
[ -f /root/vmtest-deny/key ] || ssh-keygen -q -t ecdsa -b 256 -N '' -f /root/vmtest-deny/key
echo "127.0.0.1 $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ecdsa_key.pub)" > /root/vmtest-deny/known_hosts
cp /root/vmtest-deny/key.pub $d/authorized_keys
chown -R ` + denyUser + `: $d; chmod 700 $d; chmod 600 $d/authorized_keys
restorecon -RF $d`
	denyLogin = `ssh -n -i /root/vmtest-deny/key -o BatchMode=yes -o UserKnownHostsFile=/root/vmtest-deny/known_hosts -o ConnectTimeout=20 ` + denyUser + `@127.0.0.1 true`
)

// TestEnforcementRefusesMislabelledKey shows enforcement by behaviour, not by a mode flag: sshd
// (sshd_t) may not read an authorized_keys labelled as a plain home-folder file, so the login
// is refused and exactly that denial is logged; after restorecon the same login works.
func TestEnforcementRefusesMislabelledKey(t *testing.T) {
	m := harness.Boot(t)
	mode := harness.Want[string](t, m, "selinux.mode")
	if mode == "disabled" {
		t.Skip("needs SELinux: the profile says it is disabled (nothing enforces or logs; TestChecks/selinux.mode checks that)")
	}
	harness.ExpectDenial(t, m, `authorized_keys.*scontext=system_u:system_r:sshd_t:`)
	m.MustRun(t, "sudo sh -c "+quote(denySetup))
	m.MustRun(t, "sudo chcon -t user_home_dir_t /home/"+denyUser+"/.ssh/authorized_keys")
	before, _ := m.Output(t, avc.Command)
	_, exit := m.Output(t, "sudo "+denyLogin+" 2>&1")
	after, _ := m.Output(t, avc.Command)
	require.NoError(t, Enforced(mode, exit, newRecords(before, after)))

	m.MustRun(t, "sudo restorecon -F /home/"+denyUser+"/.ssh/authorized_keys")
	label := m.MustRun(t, "sudo ls -Z /home/"+denyUser+"/.ssh/authorized_keys")
	require.Contains(t, label, ":ssh_home_t:", "restorecon gives authorized_keys its policy label")
	out, exit := m.Output(t, "sudo "+denyLogin+" 2>&1")
	require.Equal(t, 0, exit, "login with a correctly labelled authorized_keys: expected a shell, got exit %d: %s", exit, out)
}

// quote makes s one single-quoted shell word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// newRecords is the text of the denial records in after (avc.Command's output) not in before.
func newRecords(before, after string) string {
	seen := map[string]bool{}
	for _, r := range avc.Parse(before) {
		seen[r.Key()] = true
	}
	var fresh []string
	for _, r := range avc.Parse(after) {
		if !seen[r.Key()] {
			fresh = append(fresh, r.Text)
		}
	}
	return strings.Join(fresh, "\n")
}
