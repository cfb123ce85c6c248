// Command vmtest-report writes the summary people read after make test or make check: given
// the `go test -json` stream of each run (gotestsum --jsonfile) and the harness's
// vm-starts.tsv, it writes a markdown summary (per package passed, failed, skipped and wall
// time; each failure's first message and artifact folder; each skip's reason; VMs booted and
// restored) and prints its headline and one line per failure, so a CI log's tail names what
// failed.
//
//	vmtest-report -o _artifacts/summary.md -starts _artifacts/vm-starts.tsv -wall 2153 \
//	  _artifacts/test2json-suites-x86_64.json ...
//
// A run's name is its file's name without "test2json-" and ".json".
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/azl-vmtest/azl-vmtest/internal/testreport"
)

func main() {
	out := flag.String("o", "", "write the markdown summary here (default: standard output only)")
	startsFile := flag.String("starts", "", "the harness's vm-starts.tsv")
	wall := flag.Int("wall", 0, "the run's wall time in seconds")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: vmtest-report [-o summary.md] [-starts vm-starts.tsv] [-wall SECONDS] RUN.json...")
		os.Exit(2)
	}
	var runs []*testreport.Run
	for _, f := range flag.Args() {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmtest-report:", err)
			os.Exit(2)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "test2json-"), ".json")
		r, err := testreport.Read(name, fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest-report: %s: %v\n", f, err)
			os.Exit(2)
		}
		runs = append(runs, r)
	}
	starts := testreport.VMStarts{}
	if *startsFile != "" {
		if fh, err := os.Open(*startsFile); err == nil {
			starts = testreport.ReadVMStarts(fh)
			fh.Close()
		}
	}
	dir := ""
	if *out != "" {
		dir = filepath.Dir(*out)
	}
	md := testreport.Markdown(runs, starts, time.Duration(*wall)*time.Second, dir)
	if *out == "" {
		fmt.Print(md)
		return
	}
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-report:", err)
		os.Exit(2)
	}
	headline, _, _ := strings.Cut(strings.TrimPrefix(md, "# "), "\n")
	fmt.Printf("%s (summary: %s)\n", headline, *out)
	for _, l := range testreport.FailureLines(runs) {
		fmt.Println(l)
	}
}
