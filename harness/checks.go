package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// Check runs a suite's table of read-only checks on m: every probe a promised row needs, once,
// in one SSH session; then each row as a subtest named after its profile key, which skips with
// the profile's reason when the key is not promised. A failing row's message names the expected
// and the actual value; the probe's exit code and stderr follow when they say more.
//
// With VMTEST_RECORD=<folder> (make record) each probe's output is also saved as
// <folder>/<profile>/<probe>/good-<arch>.txt when every row that reads it passed.
func Check(t *testing.T, m *Machine, table check.Table) {
	t.Helper()
	p := m.Profile()
	pr := runProbes(t, m, table)
	lines, index, res := pr.lines, pr.index, pr.res
	passed := map[string]bool{}
	for _, r := range table {
		t.Run(r.Key, func(t *testing.T) {
			if why := r.Skip(p); why != "" {
				t.Skip(why)
			}
			i := index[r.Probe.Name]
			out := string(res[i].Stdout)
			if err := r.Judge(p, out); err != nil {
				t.Errorf("%v\n(probe %s: `%s`%s)", err, r.Probe.Name, lines[i], probeNote(res[i]))
				passed[r.Probe.Name+"\x00fail"] = true
				return
			}
			passed[r.Probe.Name] = true
		})
	}
	if dir := os.Getenv("VMTEST_RECORD"); dir != "" {
		for name, i := range index {
			if !passed[name] || passed[name+"\x00fail"] {
				t.Logf("record: probe %s not saved: a row reading it failed or did not run", name)
				continue
			}
			f := filepath.Join(dir, p.Name, name, "good-"+m.Arch().Name+".txt")
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, res[i].Stdout, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// probes are a table's probe commands run once each: the command lines, the line each probe
// name has, and their results.
type probes struct {
	lines []string
	index map[string]int
	res   []ssh.Result
}

// runProbes runs, in one SSH session, every probe a promised row of table needs, once.
func runProbes(t testing.TB, m *Machine, table check.Table) probes {
	t.Helper()
	if err := table.Validate(); err != nil {
		t.Fatalf("check table: %v", err)
	}
	p := m.Profile()
	pr := probes{index: map[string]int{}}
	for _, r := range table {
		if r.Skip(p) != "" {
			continue
		}
		line, err := r.Probe.Command(p)
		if err != nil {
			t.Fatalf("check %s: %v", r.Key, err)
		}
		if strings.Contains(line, check.Helper) {
			line = strings.ReplaceAll(line, check.Helper, m.InstallProbe(t))
		}
		if _, ok := pr.index[r.Probe.Name]; !ok {
			pr.index[r.Probe.Name] = len(pr.lines)
			pr.lines = append(pr.lines, line)
		}
	}
	if len(pr.lines) > 0 {
		ctx, cancel := context.WithTimeout(t.Context(), DefaultCommandTimeout)
		var err error
		pr.res, err = m.RunAll(ctx, pr.lines...)
		cancel()
		if err != nil {
			t.Fatalf("running the checks' probes: %v", err)
		}
	}
	return pr
}

// Outcomes judges every row of table on m as Check does, without subtests: "pass", "fail" or
// "skip" by profile key. For comparing one machine's outcomes with another's (the same image
// reached through another target).
func Outcomes(t testing.TB, m *Machine, table check.Table) map[string]string {
	t.Helper()
	p := m.Profile()
	pr := runProbes(t, m, table)
	out := map[string]string{}
	for _, r := range table {
		switch {
		case r.Skip(p) != "":
			out[r.Key] = "skip"
		case r.Judge(p, string(pr.res[pr.index[r.Probe.Name]].Stdout)) != nil:
			out[r.Key] = "fail"
		default:
			out[r.Key] = "pass"
		}
	}
	return out
}

func probeNote(r ssh.Result) string {
	var s []string
	if r.ExitCode != 0 {
		s = append(s, fmt.Sprintf("exit %d", r.ExitCode))
	}
	if e := strings.TrimSpace(string(r.Stderr)); e != "" {
		if len(e) > 500 {
			e = e[:500] + "…"
		}
		s = append(s, "stderr: "+e)
	}
	if len(s) == 0 {
		return ""
	}
	return "; " + strings.Join(s, "; ")
}
