package testreport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdata/fail.json and dead.json were recorded from `go test -json` on a small package: one
// test passes, one skips, one fails after logging its artifact folder, one parent fails by a
// subtest, and (dead.json) one test outlives go test's -timeout.
func read(t *testing.T, name, file string) *Run {
	t.Helper()
	f, err := os.Open("testdata/" + file)
	require.NoError(t, err)
	defer f.Close()
	r, err := Read(name, f)
	require.NoError(t, err)
	return r
}

func TestReadCountsAndFailures(t *testing.T) {
	r := read(t, "suites-x86_64", "fail.json")
	require.Len(t, r.Packages, 1)
	p := r.Packages[0]
	assert.Equal(t, "fail", p.Action)
	passed, failed, skipped := p.Counts()
	assert.Equal(t, []int{2, 3, 1}, []int{passed, failed, skipped}, "TestPasses and TestParent/ok pass; TestFails, TestParent, TestParent/bad fail")

	var names []string
	for _, f := range p.Failures() {
		names = append(names, f.Name)
	}
	assert.Equal(t, []string{"TestFails", "TestParent/bad"}, names, "a parent failing only by its subtest is not a failure of its own")
	fails := p.Failures()[0]
	assert.Equal(t, []string{"demo_test.go:11: firewall.open_ports: expected [22/tcp], got [22/tcp 8080/tcp]"}, fails.Message(5))
	assert.Equal(t, "/tmp/_artifacts/x86_64/demo/TestFails", fails.Artifacts())
}

// The harness's progress lines come first in a failed VM test's output; the reason comes after
// (output shaped as go test printed it in CI, 2026-11-28, where the summary showed the progress
// line instead).
func TestMessagePutsTheReasonBeforeProgressLines(t *testing.T) {
	testify := &Test{Action: "fail", Output: []string{
		"    machine.go:129: vm TestX: x86_64 image /c/standin.qcow2 (qcow2), accelerator tcg (KVM not usable), 1 CPUs, 2048 MiB",
		"    ready.go:74: vm TestX: +52.0s sshd: active",
		"    vmtest_test.go:40: spawned",
		"    vmtest_test.go:57: ",
		"        \tError Trace:\t/w/harness/selftest/vmtest_test.go:57",
		"        \tError:      \tReceived unexpected error:",
		"        \t            \texit status 1",
		"        \tTest:       \tTestVmtestCommand",
		"        \tMessages:   \tvmtest list",
		"    boot.go:41: artifacts: /a/TestX",
	}}
	assert.Equal(t, []string{"Received unexpected error:", "exit status 1", "vmtest list", "vmtest_test.go:40: spawned"}, testify.Message(4))
	fatal := &Test{Action: "fail", Output: []string{
		"    machine.go:129: vm TestY: aarch64 image i (qcow2), accelerator tcg (x), 1 CPUs, 2048 MiB",
		"    ready.go:74: vm TestY: rebooted, SSH back after 122.6s",
		"    hotplug.go:37: device_del fsdata: QMP connection closed",
	}}
	assert.Equal(t, []string{"hotplug.go:37: device_del fsdata: QMP connection closed"}, fatal.Message(1))
	sub := &Test{Action: "fail", Output: []string{ // a subtest's block is indented deeper
		"        ready.go:74: vm TestZ: +1.0s ready",
		"        lifecycle_test.go:12: ",
		"            \tError Trace:\t/w/suites/packages/lifecycle_test.go:12",
		"            \tError:      \tNot equal: ",
		"            \t            \texpected: \"1.1\"",
		"            \tTest:       \tTestLifecycle/dnf",
	}}
	assert.Equal(t, []string{"Not equal:", `expected: "1.1"`}, sub.Message(2))
	azure := &Test{Action: "fail", Output: []string{
		"    azure.go:12: azure: vmtest-1-azure-run: creating the network security group",
		"    azure_test.go:64: ",
		"        \tError:      \tReceived unexpected error:",
		"        \t            \tcontext deadline exceeded",
	}}
	assert.Equal(t, []string{"Received unexpected error:", "context deadline exceeded"}, azure.Message(2))
	r := &Run{Name: "selftest-b", Packages: []*Package{{Path: "x/selftest", Tests: []*Test{azure}}}}
	azure.Name, azure.Package = "TestAzure", "x/selftest"
	assert.Equal(t, []string{"FAIL selftest-b selftest/TestAzure: Received unexpected error: context deadline exceeded"}, FailureLines([]*Run{r}))
}

// testdata/testify.json is a self-test's failure as make test recorded it (2026-11-28; the
// harness's progress lines mostly left out, paths shortened): the summary must name testify's
// reason, which go test prints indented after the harness's first lines.
func TestMessageOfARecordedTestifyFailure(t *testing.T) {
	f := read(t, "selftest-a", "testify.json").Packages[0].Failures()
	require.Len(t, f, 1)
	assert.Equal(t, []string{"Received unexpected error:", "no saved state", "the fresh boot saved its state on the way"}, f[0].Message(3))
	for _, l := range f[0].Message(20) {
		assert.NotContains(t, l, "Error Trace", "testify's other fields are not the message")
		assert.NotContains(t, l, "Test:")
	}
	assert.Equal(t, "/w/_artifacts/x86_64/selftest/TestSavedStateKeyAndIntegrity", f[0].Artifacts())
	assert.Equal(t, []string{"FAIL selftest-a selftest/TestSavedStateKeyAndIntegrity: Received unexpected error: no saved state (artifacts: /w/_artifacts/x86_64/selftest/TestSavedStateKeyAndIntegrity)"}, FailureLines([]*Run{read(t, "selftest-a", "testify.json")}))
}

func TestReadTimedOutPackage(t *testing.T) {
	p := read(t, "selftest-x86_64", "dead.json").Packages[0]
	passed, failed, skipped := p.Counts()
	assert.Equal(t, []int{0, 1, 0}, []int{passed, failed, skipped}, "a test that never ended is a failure")
	f := p.Failures()
	require.Len(t, f, 1)
	assert.Equal(t, "TestHangs", f[0].Name)
	assert.Equal(t, "panic: test timed out after 2s", f[0].Message(1)[0], "the timeout is named first, not the test's last log line")
}

func TestReadPackageThatDiedOutsideTests(t *testing.T) {
	r, err := Read("x", strings.NewReader(`{"Action":"start","Package":"p/q"}
{"Action":"output","Package":"p/q","Output":"# p/q\n"}
{"Action":"output","Package":"p/q","Output":"q_test.go:3:1: syntax error\n"}
{"Action":"output","Package":"p/q","Output":"FAIL\tp/q [build failed]\n"}
{"Action":"fail","Package":"p/q","Elapsed":0.1}
not json at all`))
	require.NoError(t, err)
	f := r.Packages[0].Failures()
	require.Len(t, f, 1)
	assert.Equal(t, "(package)", f[0].Name)
	assert.Equal(t, []string{"# p/q", "q_test.go:3:1: syntax error"}, f[0].Output)
	assert.Equal(t, []string{"FAIL x q/(package): q_test.go:3:1: syntax error"}, FailureLines([]*Run{r}), "the compiler's message before the package line")
}

func TestMarkdown(t *testing.T) {
	runs := []*Run{read(t, "suites-x86_64", "fail.json"), read(t, "selftest-x86_64", "dead.json")}
	starts := ReadVMStarts(strings.NewReader("boot\tx86_64\tshared\t48.1\nsave\tx86_64\tshared\t3.2\nrestore\tx86_64\tTestA\t2.1\nrestore\tx86_64\tTestB\t2.0\nboot\taarch64\tTestC\t120\nbad line\ncpu\tx86_64\tdemo/TestA\t21.4\t60.0\ncpu\tx86_64\tdemo/shared-demo\t95.0\t300.2\ncpu\tx86_64\tdemo/TestB\tnot-a-number\t1\ncpu\tx86_64\tshort\t1\n"))
	md := Markdown(runs, starts, 95*time.Second, "/tmp/_artifacts")
	assert.Contains(t, md, "# azl-vmtest: 2 passed, 4 failed, 1 skipped in 1m35s")
	assert.Contains(t, md, "VMs on aarch64: 1 booted for real (0 of them saved their booted state), 0 restored")
	assert.Contains(t, md, "VMs on x86_64: 1 booted for real (1 of them saved their booted state), 2 restored")
	assert.Contains(t, md, "| suites-x86_64 | `demo` **FAIL** | 2 | 3 | 1 |")
	assert.Contains(t, md, "### suites-x86_64: `demo/TestParent/bad`\n\n```\ndemo_test.go:16: sysctl kernel.kptr_restrict: expected 2, got 0\n```")
	assert.Contains(t, md, "artifacts: `/tmp/_artifacts/x86_64/demo/TestFails`")
	assert.Contains(t, md, "- suites-x86_64 `demo/TestSkips`: demo_test.go:7: needs Hyper-V: running under QEMU")
	assert.Contains(t, md, "### selftest-x86_64: `dead/TestHangs`\n\n```\npanic: test timed out after 2s")
	assert.Contains(t, md, "\n## Host CPU\n\n### x86_64: QEMU used 1m56s of host CPU in 2 VMs\n\n| VM | CPU | lived |\n|---|--:|--:|\n| `demo/shared-demo` | 1m35s | 5m0s |\n| `demo/TestA` | 21s | 1m0s |\n", "the costliest VM first; malformed rows left out")
	assert.NotContains(t, md, "### aarch64: QEMU", "no CPU rows: no table")

	lines := FailureLines(runs)
	assert.Equal(t, []string{
		"FAIL suites-x86_64 demo/TestFails: demo_test.go:11: firewall.open_ports: expected [22/tcp], got [22/tcp 8080/tcp] (artifacts: /tmp/_artifacts/x86_64/demo/TestFails)",
		"FAIL suites-x86_64 demo/TestParent/bad: demo_test.go:16: sysctl kernel.kptr_restrict: expected 2, got 0",
		"FAIL selftest-x86_64 dead/TestHangs: panic: test timed out after 2s",
	}, lines)
}

// A failure's pictures are linked from the summary, relative to its folder (pipelines upload
// the folder as one artifact), only those that exist.
func TestPicturesLinkedFromTheSummary(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "x86_64", "firewall", "TestChecks")
	require.NoError(t, os.MkdirAll(a, 0o755))
	assert.Equal(t, "", pictures(a, root), "no pictures: no links")
	require.NoError(t, os.WriteFile(filepath.Join(a, "boot-stages.svg"), []byte("<svg/>"), 0o644))
	assert.Equal(t, " · [boot stages](x86_64/firewall/TestChecks/boot-stages.svg)", pictures(a, root))
	require.NoError(t, os.WriteFile(filepath.Join(a, "boot-chart.svg"), []byte("<svg/>"), 0o644))
	assert.Equal(t, " · [boot stages](x86_64/firewall/TestChecks/boot-stages.svg) · [boot chart](x86_64/firewall/TestChecks/boot-chart.svg)", pictures(a, root))
	assert.Contains(t, pictures(a, ""), "("+filepath.Join(a, "boot-chart.svg")+")", "no summary folder: absolute links")
}

// testdata/nested.json is the broken-guest self-test's failure as make test recorded it
// (2026-12-02): before its own testify block it logs the suite failures it expected, one of
// them a testify block of the suite's own, nested deeper. The summary names the self-test's.
func TestNestedTestifyBlocksComeAfterTheTestsOwn(t *testing.T) {
	f := read(t, "selftest-a", "nested.json").Packages[0].Failures()
	require.Len(t, f, 1)
	m := f[0].Message(3)
	require.NotEmpty(t, m)
	assert.Equal(t, "Not equal:", m[0])
	assert.NotContains(t, strings.Join(m, "\n"), "ausearch", "the suite's failure the self-test expected is not the reason")
	lines := FailureLines([]*Run{read(t, "selftest-a", "nested.json")})
	require.Len(t, lines, 1)
	assert.True(t, strings.HasPrefix(lines[0], "FAIL selftest-a selftest/TestBrokenGuestFailsExactlyTheMatchingChecks: Not equal: expected:"), lines[0])
}
