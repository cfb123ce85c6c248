// Command vmtest-soak tabulates repeated runs of the suites (make soak): given the `go test
// -json` output of each run, it prints every test's result per run and calls a test flaky when
// it both passed and failed. Nothing is retried: a flaky test is reported, never made green.
//
//	vmtest-soak run-1.json run-2.json ... > soak.md
//
// A run's commit, if a RUN.commit file lies beside RUN.json, heads its column: runs added to a
// soak over several sessions (make soak SOAK_RESUME=1) say what each tested. go test's exit
// status, if a RUN.rc file lies beside it, is a row of its own.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/internal/testreport"
)

// results maps "package/Test", and "package/(package)" for the package as a whole, to its
// action ("pass", "fail", "skip") in one run.
type results map[string]string

func read(r io.Reader) (results, error) {
	run, err := testreport.Read("", r)
	res := results{}
	for _, p := range run.Packages {
		// The package as a whole (named as testreport's Failures names it): it can fail with
		// every test passing (a build error, a shared VM's clean-up, TestMain), and a run cut
		// short leaves it unended.
		whole := &testreport.Test{Package: p.Path, Name: "(package)", Action: p.Action}
		for _, t := range append([]*testreport.Test{whole}, p.Tests...) {
			a := t.Action
			if a == "" {
				a = "fail" // it never ended: the binary died or timed out
			}
			res[t.Short()] = a
		}
	}
	if len(run.Packages) == 0 {
		res[wholeRun] = "fail" // go test said nothing: it never ran a package
	}
	return res, err
}

// wholeRun is the row for a run as a whole: go test's exit status, where the run recorded it
// (RUN.rc), and "fail" for a run that ran no package at all.
const wholeRun = "(go test exit status)"

// exitStatus records go test's exit status, as written to RUN.rc, in the run's results: a run
// can fail outside any package (a bad flag, go itself missing) with its JSON empty or clean.
func exitStatus(r results, rc string) {
	rc = strings.TrimSpace(rc)
	switch {
	case rc == "":
	case rc != "0":
		r[wholeRun] = "fail"
	case r[wholeRun] == "":
		r[wholeRun] = "pass"
	}
}

// table renders the runs as markdown, and says whether any test failed in any run. labels[i],
// if any, names run i's commit.
func table(runs []results, labels []string) (string, bool) {
	names := map[string]bool{}
	for _, r := range runs {
		for n := range r {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var b strings.Builder
	b.WriteString("| test |")
	for i := range runs {
		if i < len(labels) && labels[i] != "" {
			fmt.Fprintf(&b, " %d (%s) |", i+1, labels[i])
		} else {
			fmt.Fprintf(&b, " %d |", i+1)
		}
	}
	b.WriteString(" verdict |\n|---|")
	b.WriteString(strings.Repeat("---|", len(runs)+1) + "\n")
	anyFail := false
	var flaky, failing []string
	for _, n := range sorted {
		fmt.Fprintf(&b, "| `%s` |", n)
		pass, fail := 0, 0
		for _, r := range runs {
			a := r[n]
			mark := map[string]string{"pass": "ok", "fail": "FAIL", "skip": "skip", "": "-"}[a]
			fmt.Fprintf(&b, " %s |", mark)
			switch a {
			case "pass":
				pass++
			case "fail":
				fail++
			}
		}
		verdict := "stable"
		switch {
		case fail > 0 && pass > 0:
			verdict, anyFail = "**flaky**", true
			flaky = append(flaky, n)
		case fail > 0:
			verdict, anyFail = "**fails**", true
			failing = append(failing, n)
		case pass == 0:
			verdict = "skipped"
		}
		fmt.Fprintf(&b, " %s |\n", verdict)
	}
	fmt.Fprintf(&b, "\n%d runs, %d tests: %d flaky, %d failing in every run that ran them.\n", len(runs), len(sorted), len(flaky), len(failing))
	for _, n := range flaky {
		fmt.Fprintf(&b, "- flaky: `%s`\n", n)
	}
	for _, n := range failing {
		fmt.Fprintf(&b, "- fails: `%s`\n", n)
	}
	return b.String(), anyFail
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vmtest-soak RUN.json...  (go test -json output, one file per run)")
		os.Exit(2)
	}
	var runs []results
	var labels []string
	for _, f := range os.Args[1:] {
		// The commit the run tested, if make soak recorded it beside the run (RUN.commit).
		c, _ := os.ReadFile(strings.TrimSuffix(f, ".json") + ".commit")
		labels = append(labels, strings.TrimSpace(string(c)))
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		r, err := read(fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(2)
		}
		rc, _ := os.ReadFile(strings.TrimSuffix(f, ".json") + ".rc")
		exitStatus(r, string(rc))
		runs = append(runs, r)
	}
	out, failed := table(runs, labels)
	fmt.Print(out)
	if failed {
		os.Exit(1)
	}
}
