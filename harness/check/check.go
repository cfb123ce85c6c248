// Package check holds the comparisons suites make between what a profile promises and what a
// guest answered. Each returns nil or an error that names the expected and the actual value, so
// a failing suite says what broke without a second run; each is a pure function, so its
// failure path is unit-tested on recorded guest output.
package check

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Equal fails unless got == want.
func Equal(what, want, got string) error {
	if got != want {
		return fmt.Errorf("%s: expected %q, got %q", what, want, got)
	}
	return nil
}

// Match fails unless got matches the regular expression pattern.
func Match(what, pattern, got string) error {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return fmt.Errorf("%s: the profile's pattern %q is not a valid regular expression: %v", what, pattern, err)
	}
	if !re.MatchString(got) {
		return fmt.Errorf("%s: expected a match for `%s`, got %q", what, pattern, got)
	}
	return nil
}

// HasWord fails unless the whitespace-separated list got contains want.
func HasWord(what, want, got string) error {
	for _, f := range strings.Fields(got) {
		if f == want {
			return nil
		}
	}
	return fmt.Errorf("%s: expected %q among %q", what, want, got)
}

// LacksWord fails if the whitespace-separated list got contains bad (or a word starting with
// bad+"=" when bad has no "=").
func LacksWord(what, bad, got string) error {
	for _, f := range strings.Fields(got) {
		if f == bad || (!strings.Contains(bad, "=") && strings.HasPrefix(f, bad+"=")) {
			return fmt.Errorf("%s: expected no %q, got %q", what, bad, got)
		}
	}
	return nil
}

// Set fails unless the words of got are exactly the words of want, in any order.
func Set(what string, want []string, got string) error {
	g := strings.Fields(got)
	w := append([]string(nil), want...)
	if len(g) == len(w) {
		seen := map[string]int{}
		for _, x := range w {
			seen[x]++
		}
		ok := true
		for _, x := range g {
			if seen[x] == 0 {
				ok = false
				break
			}
			seen[x]--
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%s: expected %q, got %q", what, strings.Join(want, " "), strings.Join(g, " "))
}

// IntEqual fails unless got (trimmed) is the integer want.
func IntEqual(what string, want int, got string) error {
	n, err := strconv.Atoi(strings.TrimSpace(got))
	if err != nil {
		return fmt.Errorf("%s: expected %d, got %q (not an integer)", what, want, got)
	}
	if n != want {
		return fmt.Errorf("%s: expected %d, got %d", what, want, n)
	}
	return nil
}

// IntAtLeast fails unless got (trimmed) is an integer >= min.
func IntAtLeast(what string, min int, got string) error {
	n, err := strconv.Atoi(strings.TrimSpace(got))
	switch {
	case err != nil:
		return fmt.Errorf("%s: expected at least %d, got %q (not an integer)", what, min, got)
	case n < min:
		return fmt.Errorf("%s: expected at least %d, got %d", what, min, n)
	}
	return nil
}

// IntAtMost fails unless got (trimmed) is an integer <= max.
func IntAtMost(what string, max int, got string) error {
	n, err := strconv.Atoi(strings.TrimSpace(got))
	switch {
	case err != nil:
		return fmt.Errorf("%s: expected at most %d, got %q (not an integer)", what, max, got)
	case n > max:
		return fmt.Errorf("%s: expected at most %d, got %d", what, max, n)
	}
	return nil
}

// Field returns the value of "key: value" or "key=value" lines in text ("" if absent).
func Field(text, key string) string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		for _, sep := range []string{":", "="} {
			if k, v, ok := strings.Cut(l, sep); ok && strings.TrimSpace(k) == key {
				return strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	return ""
}

// Bracketed returns the word in brackets among out's words (the selected choice of a kernel
// file like "none [integrity] confidentiality"), and whether there was one.
func Bracketed(out string) (string, bool) {
	for _, f := range strings.Fields(out) {
		if len(f) > 2 && strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]"), true
		}
	}
	return "", false
}

// LastLines returns the last n lines of s (trimmed), for messages that quote a long output.
func LastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Errors joins non-nil errors into one (nil if none).
func Errors(errs ...error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "\n"))
}

// CloudInit judges `cloud-init status --long; echo exit=$?` (the boot and agents suites both
// read it): the status is want, no errors are listed (one line `errors: [...]` or a YAML list on
// the lines below; releases before 23.4 print no errors line, which means none), and the exit
// code is 0 (2 means recoverable errors).
func CloudInit(want, out string) error {
	var errs []error
	errs = append(errs, Equal("cloud-init status", want, Field(out, "status")))
	if e := cloudInitErrors(out); len(e) > 0 {
		errs = append(errs, fmt.Errorf("cloud-init errors: expected none, got %q", e))
	}
	if code := Field(out, "exit"); code != "0" {
		errs = append(errs, fmt.Errorf("cloud-init status exit code: expected 0, got %q", code))
	}
	return Errors(errs...)
}

// cloudInitErrors lists the errors cloud-init reports. The value's regexp must not cross the
// newline ([ \t]*, not \s*), or a list on the following lines is read as one inline value.
var cloudInitErrorsLine = regexp.MustCompile(`(?m)^errors:[ \t]*(.*)$`)

func cloudInitErrors(out string) []string {
	idx := cloudInitErrorsLine.FindStringSubmatchIndex(out)
	if idx == nil {
		return nil
	}
	v := strings.TrimSpace(out[idx[2]:idx[3]])
	switch {
	case v == "[]":
		return nil
	case v != "":
		return []string{v}
	}
	var items []string
	for _, l := range strings.Split(out[idx[1]:], "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "- ") {
			items = append(items, strings.TrimPrefix(t, "- "))
		} else if t != "" {
			break
		}
	}
	return items
}

// Sysctls compares `sysctl k1 k2 ...` output with the profile's values.
func Sysctls(want map[string]string, out string) error {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), " ")
		}
	}
	keys := slices.Sorted(maps.Keys(want))
	var errs []error
	for _, k := range keys {
		v, ok := got[k]
		if !ok {
			errs = append(errs, fmt.Errorf("sysctl %s: expected %q, got nothing (unknown key?)", k, want[k]))
			continue
		}
		errs = append(errs, Equal("sysctl "+k, want[k], v))
	}
	return Errors(errs...)
}
