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
// image. It runs with -short: the long tests (a VM of their own, a reboot: harness.Long) judge
// nothing broken here and cost a boot each.
func TestBrokenGuestFailsExactlyTheMatchingChecks(t *testing.T) {
	failed, output := runBroken(t, breakPromises, "-short",
		"./suites/agents/", "./suites/boot/", "./suites/firewall/", "./suites/logging/", "./suites/network/")
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

// runBroken runs go test on the suite packages (args: flags, then packages) against a stand-in
// whose first boot ran breakCmds (VMTEST_RUNCMD), and returns the failed tests that have no
// failed subtest (a table's TestChecks fails with its failing rows), sorted, with every test's
// output.
func runBroken(t *testing.T, breakCmds string, args ...string) ([]string, map[string]*strings.Builder) {
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"test", "-json", "-count=1", "-timeout", "30m"}, args...)...)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "VMTEST_RUNCMD="+breakCmds, "VMTEST_KEEP=never")
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
	return failed, output
}

// TestRefusalsFailWhenSignaturesAreNotChecked runs the package suite's refusal tests against a
// stand-in whose first boot turned package signature checking off (dnf: gpgcheck=0; apt:
// unauthenticated repositories and packages allowed) while the profile still promises it: the
// unsigned and untrusted cases must fail, naming the acceptance; what the managers check
// whatever that setting says (apt's hash of a package against its index, rpm's own digests, and
// the repository file's repo_gpgcheck=1) must still be refused.
func TestRefusalsFailWhenSignaturesAreNotChecked(t *testing.T) {
	off := strings.Join([]string{
		"sed -i 's/^gpgcheck=.*/gpgcheck=0/' /etc/dnf/dnf.conf",
		"printf 'Acquire::AllowInsecureRepositories \"true\";\\nAPT::Get::AllowUnauthenticated \"true\";\\n' > /etc/apt/apt.conf.d/01-vmtest-broken",
	}, "\n")
	failed, output := runBroken(t, off, "-run", "^TestRefusals$", "./suites/packages/")
	assert.Equal(t, []string{
		"packages/TestRefusals/apt/unsigned",
		"packages/TestRefusals/apt/untrusted",
		"packages/TestRefusals/dnf/unsigned",
		"packages/TestRefusals/dnf/untrusted",
	}, failed, "exactly the signature checks that were turned off must fail")
	for _, name := range failed {
		if b := output[name]; assert.NotNil(t, b, name) {
			assert.Regexp(t, `expected refused \(non-zero exit and /.*/\), got exit 0`, b.String(), "%s must say the manager accepted", name)
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
