package selftest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// breakPromises breaks one promise of each suite at once, at the guest's first boot.
var breakPromises = strings.Join([]string{
	"firewall-cmd --permanent --zone=public --add-port=8080/tcp && firewall-cmd --reload",
	"systemctl mask --now auditd.service",
	"sysctl -w net.ipv4.conf.all.rp_filter=0",
	"printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/01-broken.conf && systemctl reload ssh",
	"printf '[Service]\\nExecStart=/bin/false\\n' > /etc/systemd/system/vmtest-broken.service && systemctl start vmtest-broken.service || true",
}, "\n")

// wantBroken are the checks that must fail on that guest, and only these.
var wantBroken = []string{
	"agents/TestChecks/agents.sshd",
	"boot/TestChecks/boot.system_state",
	"firewall/TestChecks/firewall.ports",
	"logging/TestAuditWatchRuleRecordsEvent",
	"logging/TestChecks/logging.auditd",
	"network/TestChecks/network.sysctls",
}

// TestBrokenGuestFailsExactlyTheMatchingChecks runs the suites against a stand-in whose first
// boot broke five promises (a port opened, auditd masked, rp_filter=0, password login allowed,
// a failing unit): exactly the checks of those promises must fail, naming expected and actual,
// and every other check must still pass. The end-to-end proof that the suites catch a broken
// image. (The reboot tests are left out: they judge nothing broken here and cost a boot each.)
func TestBrokenGuestFailsExactlyTheMatchingChecks(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.CommandContext(t.Context(), "go", "test", "-json", "-count=1", "-timeout", "30m",
		"-skip", "^(TestJournalSurvivesReboot|TestFilesystemsSurviveReboot)$",
		"./suites/agents/", "./suites/boot/", "./suites/firewall/", "./suites/logging/", "./suites/network/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VMTEST_RUNCMD="+breakPromises, "VMTEST_KEEP=never")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // failing tests are expected: judge the events
	results := map[string]string{}
	output := map[string]*strings.Builder{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct{ Action, Package, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		name := filepath.Base(ev.Package) + "/" + ev.Test
		switch ev.Action {
		case "pass", "fail", "skip":
			results[name] = ev.Action
		case "output":
			if output[name] == nil {
				output[name] = &strings.Builder{}
			}
			output[name].WriteString(ev.Output)
		}
	}
	require.NotEmpty(t, results, "no suite test ran: %s", stderr.String())
	// The failed checks: leaves only (a table's TestChecks fails with its failing rows).
	var failed []string
	for name, r := range results {
		if r == "fail" && !hasFailedChild(results, name) {
			failed = append(failed, name)
		}
	}
	sort.Strings(failed)
	for _, name := range failed {
		t.Logf("%s failed as:\n%s", name, check.LastLines(output[name].String(), 12))
	}
	assert.Equal(t, wantBroken, failed, "exactly the checks of the broken promises must fail")
	for name, want := range map[string]string{
		"firewall/TestChecks/firewall.ports": `ports: expected "", got "8080/tcp"`,
		"logging/TestChecks/logging.auditd":  `auditd state: expected "active", got "inactive"`,
		"network/TestChecks/network.sysctls": `sysctl net.ipv4.conf.all.rp_filter: expected "1", got "0"`,
		"agents/TestChecks/agents.sshd":      `sshd -T passwordauthentication: expected no, got "yes"`,
		"boot/TestChecks/boot.system_state":  "vmtest-broken.service",
	} {
		if b := output[name]; assert.NotNil(t, b, name) {
			assert.Contains(t, b.String(), want, "%s must name the expected and the actual value", name)
		}
	}
}

func hasFailedChild(results map[string]string, name string) bool {
	for n, r := range results {
		if r == "fail" && strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

func moduleRoot(t *testing.T) string {
	wd, err := os.Getwd()
	require.NoError(t, err)
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above " + wd)
	return ""
}
