package check

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Answer is one recorded probe output: fixtures/<Profile>/<Probe>/<File>.
type Answer struct {
	Profile, Probe, File string
	Out                  string
}

// Good reports whether the answer is a recorded good one (good*.txt).
func (a Answer) Good() bool { return strings.HasPrefix(a.File, "good") }

// Breaks returns the key a broken answer (broken-<key>[-<what>].txt) breaks, or "".
func (a Answer) Breaks() string {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(a.File, ".txt"), "broken-")
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(rest, "-")
	return key
}

func (a Answer) String() string { return path.Join("fixtures", a.Profile, a.Probe, a.File) }

// Answers reads the recorded answers of a probe from fsys (<profile>/<probe>/*.txt).
func Answers(fsys fs.FS, probe string) ([]Answer, error) {
	files, err := fs.Glob(fsys, path.Join("*", probe, "*.txt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var as []Answer
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		parts := strings.Split(f, "/")
		as = append(as, Answer{Profile: parts[0], Probe: parts[1], File: parts[2], Out: string(b)})
	}
	return as, nil
}

// Audit judges every row of a table on the recorded answers in fsys and returns what is wrong,
// so that every check is shown able to pass and able to fail:
//   - a good answer that a row the answer's profile promises rejects;
//   - a broken-<key> answer that the row of <key> accepts, or rejects without naming what it
//     expected;
//   - a row without a good answer, or without a broken answer it rejects;
//   - an answer whose profile or key does not exist.
func Audit(t Table, fsys fs.FS) []error {
	problems := []error{}
	if err := t.Validate(); err != nil {
		problems = append(problems, err)
	}
	profiles := map[string]*profile.Profile{}
	load := func(name string) (*profile.Profile, error) {
		if p, ok := profiles[name]; ok {
			return p, nil
		}
		p, err := profile.Load(name)
		if err != nil {
			return nil, err
		}
		profiles[name] = p
		return p, nil
	}
	rows := map[string]Row{}
	for _, r := range t {
		rows[r.Key] = r
	}
	goods, brokens := map[string]int{}, map[string]int{}
	for _, pr := range t.Probes() {
		answers, err := Answers(fsys, pr.Name)
		if err != nil {
			problems = append(problems, fmt.Errorf("probe %s: %w", pr.Name, err))
			continue
		}
		for _, a := range answers {
			p, err := load(a.Profile)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", a, err))
				continue
			}
			if a.Good() {
				for _, r := range t {
					if r.Probe.Name != pr.Name || r.Skip(p) != "" {
						continue
					}
					if err := r.Judge(p, a.Out); err != nil {
						problems = append(problems, fmt.Errorf("%s: a good answer, but row %s rejects it: %v", a, r.Key, err))
					} else {
						goods[r.Key]++
					}
				}
				continue
			}
			key := a.Breaks()
			r, ok := rows[key]
			switch {
			case key == "":
				problems = append(problems, fmt.Errorf("%s: name it good*.txt or broken-<key>[-<what>].txt", a))
				continue
			case !ok:
				if !profile.IsKey(key) {
					problems = append(problems, fmt.Errorf("%s: breaks %q, which is no profile key", a, key))
				}
				continue // another suite's row reads this probe too
			case r.Probe.Name != pr.Name:
				problems = append(problems, fmt.Errorf("%s: breaks %s, whose row reads probe %s", a, key, r.Probe.Name))
				continue
			}
			if why := r.Skip(p); why != "" {
				problems = append(problems, fmt.Errorf("%s: breaks %s, which %s cannot judge: %s", a, key, p.Name, why))
				continue
			}
			err = r.Judge(p, a.Out)
			var np *profile.NotPromisedError
			switch {
			case err == nil:
				problems = append(problems, fmt.Errorf("%s: a broken answer for %s, but the row accepts it", a, key))
			case errors.As(err, &np):
				problems = append(problems, fmt.Errorf("%s: %v", a, err))
			case !strings.Contains(err.Error(), "expected"):
				problems = append(problems, fmt.Errorf("%s: row %s rejects it without saying what it expected: %v", a, key, err))
			default:
				brokens[key]++
			}
		}
	}
	for _, r := range t {
		if goods[r.Key] == 0 {
			problems = append(problems, fmt.Errorf("row %s: no recorded good answer passes it (fixtures/<profile>/%s/good.txt)", r.Key, r.Probe.Name))
		}
		if brokens[r.Key] == 0 {
			problems = append(problems, fmt.Errorf("row %s: no recorded broken answer makes it fail (fixtures/<profile>/%s/broken-%s-<what>.txt)", r.Key, r.Probe.Name, r.Key))
		}
	}
	return problems
}
