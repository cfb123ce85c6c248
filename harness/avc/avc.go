// Package avc reads SELinux denial records (AVC, USER_AVC, SELINUX_ERR) from a guest's audit
// log and kernel log, so the harness can fail a test during which the guest logged a denial it
// did not expect, tmt-style (tmt/checks/avc.py).
package avc

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Command prints the denial records the guest has logged: auditd's log (current and rotated) and
// the kernel log (where the kernel's records go when no auditd runs), read with one sudo. It
// exits 0 unless sudo fails.
const Command = `sudo -n sh -c '` + auditRecords + `; dmesg | grep -oE "` + kernelRecordPattern + `"; true'`

// LogsScript, run as root, prints the kernel log, a Separator line, then auditd's denial
// records: what the harness reads after every test, with one command (reading the kernel log
// and the denial records with three sudos took 2.3 s of every test under TCG). SplitLogs takes
// the kernel's records from the kernel log on the host. It holds no single quote.
const LogsScript = `dmesg; echo "` + Separator + `"; ` + auditRecords + `; true`

// Separator ends the kernel log in LogsScript's output.
const Separator = "--- azl-vmtest: end of the kernel log ---"

const (
	auditRecords        = `cat /var/log/audit/audit.log.1 /var/log/audit/audit.log 2>/dev/null | grep -E "^type=(AVC|USER_AVC|SELINUX_ERR) "`
	kernelRecordPattern = `type=(1400|1107|1401) audit\([0-9.:]+\): .*`
)

var kernelRecordRE = regexp.MustCompile(kernelRecordPattern)

// SplitLogs splits LogsScript's output into the kernel log and the denial records as Command
// prints them (auditd's, then the kernel log's); ok is false without the separator.
func SplitLogs(out string) (dmesg, denials string, ok bool) {
	dmesg, audit, ok := strings.Cut(out, Separator+"\n")
	if !ok {
		return out, "", false
	}
	var b strings.Builder
	b.WriteString(audit)
	if audit != "" && !strings.HasSuffix(audit, "\n") {
		b.WriteString("\n")
	}
	for _, l := range strings.Split(dmesg, "\n") {
		if r := kernelRecordRE.FindString(l); r != "" {
			b.WriteString(r + "\n")
		}
	}
	return dmesg, b.String(), true
}

// Record is one denial record.
type Record struct {
	ID   string // audit(<time>:<serial>): unique within a boot
	Type string // AVC, USER_AVC or SELINUX_ERR
	Text string // the whole line
}

var (
	idRE   = regexp.MustCompile(`audit\([0-9.]+:[0-9]+\)`)
	typeRE = regexp.MustCompile(`^type=(AVC|USER_AVC|SELINUX_ERR|1400|1107|1401)\b`)
)

var numbered = map[string]string{"1400": "AVC", "1107": "USER_AVC", "1401": "SELINUX_ERR"}

// Parse reads Command's output: one record per line, each once (the kernel log and auditd's log
// may both hold a record; its audit id tells).
func Parse(out string) []Record {
	var recs []Record
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		m := typeRE.FindStringSubmatch(l)
		id := idRE.FindString(l)
		if m == nil || id == "" {
			continue
		}
		t := m[1]
		if n, ok := numbered[t]; ok {
			t = n
		}
		r := Record{ID: id, Type: t, Text: l}
		if seen[r.Key()] {
			continue
		}
		seen[r.Key()] = true
		recs = append(recs, r)
	}
	return recs
}

// Denials is what a test answers for: the records not seen before, less those an allow-list
// entry (pattern -> reason) or the test's own expectations match.
func Denials(recs []Record, seen map[string]bool, allowed map[string]string, expected []*regexp.Regexp) ([]Record, error) {
	var pats []*regexp.Regexp
	keys := slices.Sorted(maps.Keys(allowed))
	for _, k := range keys {
		re, err := regexp.Compile(k)
		if err != nil {
			return nil, fmt.Errorf("selinux.allowed_denials: %q is not a regular expression: %v", k, err)
		}
		pats = append(pats, re)
	}
	pats = append(pats, expected...)
	var out []Record
next:
	for _, r := range recs {
		if seen[r.Key()] {
			continue
		}
		for _, p := range pats {
			if p.MatchString(r.Text) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Report says what a test must answer for, the records first (at most max).
func Report(recs []Record, max int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SELinux denials: expected none during the test, got %d (allow one in the profile's selinux.allowed_denials with a reason, or declare it in the test with harness.ExpectDenial):", len(recs))
	for i, r := range recs {
		if i == max {
			fmt.Fprintf(&b, "\n  ... and %d more", len(recs)-max)
			break
		}
		b.WriteString("\n  " + r.Text)
	}
	return b.String()
}

// Key is the identity of a record in a seen set.
func (r Record) Key() string { return r.ID + r.Type }
