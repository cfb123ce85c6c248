// Package testreport reads `go test -json` (test2json) streams and summarises them for people:
// per package the tests passed, failed and skipped, each skip's reason, each failure's first
// message and artifact folder, and each package's wall time. make test writes it as
// _artifacts/summary.md, ready to paste into a pipeline's summary; make soak tabulates runs
// with it.
package testreport

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Test is one test's (or subtest's) result.
type Test struct {
	Package string // the package's import path
	Name    string // "TestX" or "TestX/sub"
	Action  string // "pass", "fail", "skip" or "" (it never ended: the binary died or timed out)
	Elapsed time.Duration
	// Output is what the test printed, as printed (indented), without test2json's framing lines
	// ("=== RUN", "--- FAIL").
	Output []string
}

// Short names the test as "package/TestX" with the package's last element.
func (t *Test) Short() string { return path.Base(t.Package) + "/" + t.Name }

// Message is the test's failure message first, then the rest of what it printed, at most n
// lines, without the harness's artifact line: for a test that never ended, the panic that ended
// the binary (go test's -timeout says "panic: test timed out after ..."); then what testify's
// assertions said (their "Error:" and "Messages:" fields); then the lines the test's own files
// printed; then other lines; last the harness's progress lines ("vm NAME: ...", "azure: ..."),
// which come first in a failed test's output but seldom say why it failed.
func (t *Test) Message(n int) []string {
	var ranked [4][]string
	// testify's Error and Messages fields by their block's indentation: a test's own failure
	// comes before the blocks of another run's failures it logged, nested deeper (a self-test
	// that runs a suite and shows what failed there).
	blocks := map[int][]string{}
	var panics []string
	header, depth := "", 0
	for _, l := range t.Output {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "panic:") && t.Action == "":
			panics = append(panics, l)
			continue
		case strings.Contains(l, "artifacts: "):
			continue
		}
		if h, rest, ok := testifyField(l); ok {
			header, depth = h, len(l)-len(strings.TrimLeft(l, " "))
			if (h == "Error" || h == "Messages") && rest != "" {
				blocks[depth] = append(blocks[depth], rest)
			}
			continue
		}
		if header != "" && strings.HasPrefix(strings.TrimLeft(l, " "), "\t") {
			if header == "Error" || header == "Messages" {
				blocks[depth] = append(blocks[depth], trimmed)
			}
			continue
		}
		header = ""
		switch loc, msg, _ := strings.Cut(trimmed, ": "); {
		case progress(msg):
			ranked[3] = append(ranked[3], trimmed)
		case strings.Contains(loc, "_test.go:") && msg != "":
			ranked[1] = append(ranked[1], trimmed)
		default:
			ranked[2] = append(ranked[2], trimmed)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(blocks)) {
		ranked[0] = append(ranked[0], blocks[d]...)
	}
	out := panics
	for _, r := range ranked {
		out = append(out, r...)
	}
	if len(out) > n {
		return out[:n]
	}
	return out
}

// testifyField splits a line of testify's failure block ("\tError:      \tNot equal:", indented
// by go test: deeper in a subtest) into its field and value.
func testifyField(l string) (field, value string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimLeft(l, " "), "\t")
	if !ok {
		return "", "", false
	}
	field, value, ok = strings.Cut(rest, ":")
	// A field is a name ("Error", "Error Trace"); a value's continuation line starts with the
	// spaces that align it under the values.
	if !ok || field == "" || field[0] == ' ' || strings.Contains(field, "\t") {
		return "", "", false
	}
	return field, strings.TrimSpace(value), true
}

// progress reports whether a message is one of the harness's progress lines.
func progress(msg string) bool {
	return strings.HasPrefix(msg, "vm ") || strings.HasPrefix(msg, "azure: ")
}

// Artifacts is the artifact folder the harness named in the test's output ("artifacts: PATH"),
// or "".
func (t *Test) Artifacts() string {
	for _, l := range t.Output {
		if _, p, ok := strings.Cut(l, "artifacts: "); ok {
			p, _, _ = strings.Cut(p, " (")
			return strings.TrimSpace(p)
		}
	}
	return ""
}

// Package is one package's result.
type Package struct {
	Path    string
	Action  string // "pass", "fail", "skip" (no test files) or "" (never ended)
	Elapsed time.Duration
	Tests   []*Test // in the order they started
	// Output is what the package printed outside any test (a build error, a panic's trace, a
	// shared VM's artifact line).
	Output []string
}

// Counts returns how many tests passed, failed and skipped (subtests counted like tests, as
// JUnit counts them). A test that never ended counts as failed.
func (p *Package) Counts() (passed, failed, skipped int) {
	for _, t := range p.Tests {
		switch t.Action {
		case "pass":
			passed++
		case "skip":
			skipped++
		default:
			failed++
		}
	}
	return
}

// Failures are the tests that failed for a reason of their own: a parent that failed only
// because a subtest did is left out, as is a test whose subtests all passed. A package that
// failed with no failing test (a build error, a panic, go test's -timeout) is reported as a
// test named "(package)" with the package's output.
func (p *Package) Failures() []*Test {
	var out []*Test
	for _, t := range p.Tests {
		if t.Action == "pass" || t.Action == "skip" {
			continue
		}
		childFailed := slices.ContainsFunc(p.Tests, func(c *Test) bool {
			return strings.HasPrefix(c.Name, t.Name+"/") && c.Action != "pass" && c.Action != "skip"
		})
		if !childFailed || len(t.Output) > 0 {
			out = append(out, t)
		}
	}
	if len(out) == 0 && p.Action != "pass" && p.Action != "skip" {
		out = append(out, &Test{Package: p.Path, Name: "(package)", Action: p.Action, Elapsed: p.Elapsed, Output: tail(p.Output, 20)})
	}
	return out
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Run is one `go test -json` stream: a run of one or more packages.
type Run struct {
	Name     string // e.g. "suites-x86_64"
	Packages []*Package
}

// Read parses a test2json stream. Lines that are not JSON events (a build's own output when
// go test was not given -json) are kept as output of no package.
func Read(name string, r io.Reader) (*Run, error) {
	run := &Run{Name: name}
	pkgs := map[string]*Package{}
	tests := map[string]*Test{}
	pkg := func(p string) *Package {
		if pkgs[p] == nil {
			pkgs[p] = &Package{Path: p}
			run.Packages = append(run.Packages, pkgs[p])
		}
		return pkgs[p]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action, Package, Test, Output string
			Elapsed                       float64
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Package == "" {
			continue
		}
		p := pkg(ev.Package)
		elapsed := time.Duration(ev.Elapsed * float64(time.Second))
		if ev.Test == "" {
			switch ev.Action {
			case "output":
				if l := strings.TrimRight(ev.Output, "\n"); !framing(l) {
					p.Output = append(p.Output, l)
				}
			case "pass", "fail", "skip":
				p.Action, p.Elapsed = ev.Action, elapsed
			}
			continue
		}
		key := ev.Package + "\x00" + ev.Test
		t := tests[key]
		if t == nil {
			t = &Test{Package: ev.Package, Name: ev.Test}
			tests[key] = t
			p.Tests = append(p.Tests, t)
		}
		switch ev.Action {
		case "output":
			if l := strings.TrimRight(ev.Output, "\n"); !framing(l) {
				t.Output = append(t.Output, l) // indented as printed: Message reads testify's blocks by it
			}
		case "pass", "fail", "skip":
			t.Action, t.Elapsed = ev.Action, elapsed
		}
	}
	return run, sc.Err()
}

// framing says whether a line is go test's own bookkeeping rather than what a test printed.
func framing(l string) bool {
	t := strings.TrimSpace(l)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP", "PASS", "FAIL", "ok  \t"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return t == ""
}

// VMStarts counts how VMs were started in a run, per architecture, from the harness's
// vm-starts.tsv (kind, arch, name, seconds; a "cpu" row adds the VM's lifetime after its host
// CPU seconds).
type VMStarts map[string]*ArchVMs

// ArchVMs is one architecture's VMs in a run.
type ArchVMs struct {
	Boots, Restores, Saves int
	CPU                    []VMUsage // one per VM that QEMU ran and the harness stopped
}

// VMUsage is the host CPU one VM's QEMU used, and how long it lived.
type VMUsage struct {
	Name      string // package/VM
	CPU, Life time.Duration
}

// ReadVMStarts parses vm-starts.tsv.
func ReadVMStarts(r io.Reader) VMStarts {
	v := VMStarts{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 2 {
			continue
		}
		c := v[f[1]]
		if c == nil {
			c = &ArchVMs{}
		}
		switch f[0] {
		case "boot":
			c.Boots++
		case "restore":
			c.Restores++
		case "save":
			c.Saves++
		case "cpu":
			if len(f) < 5 {
				continue
			}
			cpu, err1 := strconv.ParseFloat(f[3], 64)
			life, err2 := strconv.ParseFloat(f[4], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			c.CPU = append(c.CPU, VMUsage{Name: f[2], CPU: seconds(cpu), Life: seconds(life)})
		default:
			continue
		}
		v[f[1]] = c
	}
	return v
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// TopCPU is how many of the costliest VMs the summary lists.
const TopCPU = 12

// cpuTable lists each architecture's QEMU CPU time in all and its costliest VMs: on a
// CPU-bound host (TCG) it says where the run's time went.
func cpuTable(starts VMStarts) string {
	var b strings.Builder
	for _, arch := range slices.Sorted(maps.Keys(starts)) {
		c := starts[arch]
		if len(c.CPU) == 0 {
			continue
		}
		var total time.Duration
		for _, u := range c.CPU {
			total += u.CPU
		}
		top := slices.Clone(c.CPU)
		slices.SortStableFunc(top, func(a, b VMUsage) int { return cmp.Compare(b.CPU, a.CPU) })
		fmt.Fprintf(&b, "\n### %s: QEMU used %s of host CPU in %d VMs\n\n| VM | CPU | lived |\n|---|--:|--:|\n", arch, total.Round(time.Second), len(c.CPU))
		for _, u := range top[:min(TopCPU, len(top))] {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", u.Name, u.CPU.Round(time.Second), u.Life.Round(time.Second))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "\n## Host CPU\n" + b.String()
}

// Markdown renders the runs as the summary people read: a table per package, then every
// failure with its first message, artifact folder and links to its pictures (the harness's boot
// stages and the guest's boot chart, relative to dir, where the summary is written), then every
// skip with its reason.
func Markdown(runs []*Run, starts VMStarts, wall time.Duration, dir string) string {
	var b strings.Builder
	var passed, failed, skipped int
	var failures, skips []string
	b.WriteString("| run | package | passed | failed | skipped | wall |\n|---|---|--:|--:|--:|--:|\n")
	for _, r := range runs {
		for _, p := range r.Packages {
			ps, fl, sk := p.Counts()
			if fl == 0 && p.Action != "pass" && p.Action != "skip" {
				fl = 1 // a package that died outside its tests
			}
			passed, failed, skipped = passed+ps, failed+fl, skipped+sk
			if ps+fl+sk == 0 {
				continue // no tests in it
			}
			mark := ""
			if fl > 0 {
				mark = " **FAIL**"
			}
			fmt.Fprintf(&b, "| %s | `%s`%s | %d | %d | %d | %s |\n", r.Name, path.Base(p.Path), mark, ps, fl, sk, p.Elapsed.Round(time.Second))
			for _, t := range p.Failures() {
				var f strings.Builder
				fmt.Fprintf(&f, "### %s: `%s`\n\n```\n%s\n```\n", r.Name, t.Short(), strings.Join(t.Message(12), "\n"))
				if a := t.Artifacts(); a != "" {
					fmt.Fprintf(&f, "artifacts: `%s`%s\n", a, pictures(a, dir))
				}
				failures = append(failures, f.String())
			}
			for _, t := range p.Tests {
				if t.Action == "skip" {
					skips = append(skips, fmt.Sprintf("- %s `%s`: %s\n", r.Name, t.Short(), strings.Join(t.Message(2), " ")))
				}
			}
		}
	}
	head := fmt.Sprintf("# azl-vmtest: %d passed, %d failed, %d skipped in %s\n\n", passed, failed, skipped, wall.Round(time.Second))
	for _, arch := range slices.Sorted(maps.Keys(starts)) {
		c := starts[arch]
		head += fmt.Sprintf("VMs on %s: %d booted for real (%d of them saved their booted state), %d restored from a saved state.\n", arch, c.Boots, c.Saves, c.Restores)
	}
	var out strings.Builder
	out.WriteString(head + "\n" + b.String())
	if len(failures) > 0 {
		out.WriteString("\n## Failures\n\n" + strings.Join(failures, "\n"))
	}
	if len(skips) > 0 {
		out.WriteString("\n## Skipped\n\n" + strings.Join(skips, ""))
	}
	out.WriteString(cpuTable(starts))
	return out.String()
}

// pictureFiles are the artifacts people would rather look at than read.
var pictureFiles = []struct{ file, title string }{
	{"boot-stages.svg", "boot stages"},
	{"boot-chart.svg", "boot chart"},
}

// pictures links the pictures in the artifact folder a, relative to dir where possible.
func pictures(a, dir string) string {
	var links []string
	for _, p := range pictureFiles {
		file := filepath.Join(a, p.file)
		if _, err := os.Stat(file); err != nil {
			continue
		}
		if dir != "" {
			if rel, err := filepath.Rel(dir, file); err == nil {
				file = rel
			}
		}
		links = append(links, fmt.Sprintf("[%s](%s)", p.title, filepath.ToSlash(file)))
	}
	if len(links) == 0 {
		return ""
	}
	return " · " + strings.Join(links, " · ")
}

// FailureLines is one line per failure, for a terminal or a CI log's tail:
// "FAIL run package/TestX: first line (artifacts: PATH)".
func FailureLines(runs []*Run) []string {
	var out []string
	for _, r := range runs {
		for _, p := range r.Packages {
			for _, t := range p.Failures() {
				first := "(no message)"
				if m := t.Message(2); len(m) > 0 {
					first = m[0]
					if len(m) > 1 && strings.HasSuffix(first, ":") { // "Received unexpected error:"
						first += " " + m[1]
					}
				}
				l := fmt.Sprintf("FAIL %s %s: %s", r.Name, t.Short(), first)
				if a := t.Artifacts(); a != "" {
					l += " (artifacts: " + a + ")"
				}
				out = append(out, l)
			}
		}
	}
	return out
}
