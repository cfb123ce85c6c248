package check

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Helper stands in a probe's command for the path of the harness's static guest helper
// (cmd/vmtest-probe, built for the guest's architecture): harness.Check copies it in first.
const Helper = "{vmtest-probe}"

// Probe is a read-only guest command whose output checks read. Its Name names its recorded
// answers: fixtures/<profile>/<Name>/good*.txt, and broken-<key>[-<what>].txt for an answer
// that breaks the promise of <key>.
type Probe struct {
	Name string
	// Cmd is a shell line; {section.key} in it stands for that profile key's value: a string, a
	// list's items or a map's keys (sorted), space-separated; Helper for the helper's path.
	Cmd string
}

// Row is one read-only check, kola-style: the profile key whose value is the expectation, the
// probe whose output shows the actual, and the judge that compares them.
type Row struct {
	Key   string
	Probe Probe
	Doc   string // what it checks, in one line (the README's list of checks)
	judge func(p *profile.Profile, out string) error
}

// Table is a suite's read-only checks; harness.Check runs one on a machine, Audit on
// recorded answers.
type Table []Row

// New makes a row: judge gets the value of key (read by profile.Get, the one path from a key to
// its value) and the probe's stdout, and returns nil or an error naming expected and actual.
func New[T any](key string, probe Probe, doc string, judge func(want T, out string) error) Row {
	return Row{Key: key, Probe: probe, Doc: doc, judge: func(p *profile.Profile, out string) error {
		want, err := profile.Get[T](p, key)
		if err != nil {
			return err
		}
		return judge(want, out)
	}}
}

// Judge compares the probe's output with p's value for the row's key. A key p does not promise
// returns *profile.NotPromisedError (the check skips with its reason).
func (r Row) Judge(p *profile.Profile, out string) error { return r.judge(p, out) }

var placeholder = regexp.MustCompile(`\{([a-z0-9_]+\.[a-z0-9_]+)\}`)

// safeValue is what a profile value may hold to stand in a shell line unquoted (globs included).
var safeValue = regexp.MustCompile(`^[A-Za-z0-9._/*?@:+=-]+$`)

// Command is the probe's shell line for p, placeholders filled. A placeholder's key p does not
// promise returns *profile.NotPromisedError.
func (pr Probe) Command(p *profile.Profile) (string, error) {
	var err error
	line := placeholder.ReplaceAllStringFunc(pr.Cmd, func(m string) string {
		key := m[1 : len(m)-1]
		words, e := words(p, key)
		for _, w := range words {
			if e == nil && !safeValue.MatchString(w) {
				e = fmt.Errorf("profile %s: %s = %q cannot stand in the command of probe %s (letters, digits and ._/*?@:+=- only)", p.Name, key, w, pr.Name)
			}
		}
		if e != nil && err == nil {
			err = e
		}
		return strings.Join(words, " ")
	})
	return line, err
}

// words is key's value as command words: a string, a list's items, a map's sorted keys.
func words(p *profile.Profile, key string) ([]string, error) {
	if s, err := profile.Get[string](p, key); err == nil {
		return []string{s}, nil
	} else if l, err2 := profile.Get[[]string](p, key); err2 == nil {
		return l, nil
	} else if m, err3 := profile.Get[map[string]string](p, key); err3 == nil {
		keys := slices.Sorted(maps.Keys(m))
		return keys, nil
	} else if _, ok := err.(*profile.NotPromisedError); ok {
		return nil, err
	}
	return nil, fmt.Errorf("profile: %s cannot stand in a command (a string, a list or a map of strings can)", key)
}

// Skip says why a row does not run on p (its key, or a key its command needs, is not promised),
// or "" when it runs.
func (r Row) Skip(p *profile.Profile) string {
	var np *profile.NotPromisedError
	if reason, ok := p.Unpromised(r.Key); ok {
		return (&profile.NotPromisedError{Profile: p.Name, Key: r.Key, Reason: reason}).Error()
	}
	if _, err := r.Probe.Command(p); errors.As(err, &np) {
		return err.Error()
	}
	return ""
}

// Probes lists the table's probes, each once, in order of first use.
func (t Table) Probes() []Probe {
	var ps []Probe
	seen := map[string]bool{}
	for _, r := range t {
		if !seen[r.Probe.Name] {
			seen[r.Probe.Name] = true
			ps = append(ps, r.Probe)
		}
	}
	return ps
}

// Validate finds mistakes in a table itself: a key no profile has, a key checked twice, two
// probes of one name with different commands.
func (t Table) Validate() error {
	var errs []error
	keys := map[string]bool{}
	cmds := map[string]string{}
	for _, r := range t {
		if !profile.IsKey(r.Key) {
			errs = append(errs, fmt.Errorf("row %s: no such profile key", r.Key))
		}
		if keys[r.Key] {
			errs = append(errs, fmt.Errorf("row %s: key checked by two rows", r.Key))
		}
		keys[r.Key] = true
		if c, ok := cmds[r.Probe.Name]; ok && c != r.Probe.Cmd {
			errs = append(errs, fmt.Errorf("probe %s: two commands under one name (%q, %q)", r.Probe.Name, c, r.Probe.Cmd))
		}
		cmds[r.Probe.Name] = r.Probe.Cmd
		if r.Probe.Name == "" || strings.ContainsAny(r.Probe.Name, "/ ") {
			errs = append(errs, fmt.Errorf("row %s: probe name %q must be a folder name", r.Key, r.Probe.Name))
		}
		for _, m := range placeholder.FindAllStringSubmatch(r.Probe.Cmd, -1) {
			if !profile.IsKey(m[1]) {
				errs = append(errs, fmt.Errorf("probe %s: command names unknown key {%s}", r.Probe.Name, m[1]))
			}
		}
	}
	return Errors(errs...)
}
