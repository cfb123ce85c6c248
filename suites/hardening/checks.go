// Package hardening verifies the system's hardening promises: the kernel and BPF hardening
// sysctls, seccomp, the kernel lockdown mode, ASLR shown by behaviour, the ELF hardening of every
// program under /usr, a minimal package set without a graphical stack, and the Tier-1 ABI lock.
package hardening

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/harness/elfscan"
)

// packages lists the installed packages' names, one per line, from rpm or dpkg (whichever the
// image has; a Debian image with rpm installed has an empty rpm database).
var packages = check.Probe{Name: "packages", Cmd: `{ rpm -qa --qf '%{NAME}\n' 2>/dev/null; dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1=="ii"{print $2}'; } | sort -u`}

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("hardening.kernel_sysctls", check.Probe{Name: "kernel-sysctls", Cmd: "sysctl {hardening.kernel_sysctls}"},
		"each kernel and BPF hardening sysctl has the profile's value (kptr_restrict, dmesg_restrict, ASLR, unprivileged BPF, ...)", check.Sysctls),
	check.New("hardening.seccomp", check.Probe{Name: "seccomp", Cmd: "grep -E '^Seccomp' /proc/self/status; true"},
		"the kernel offers seccomp filtering (`Seccomp:` in `/proc/self/status`), or not", Seccomp),
	check.New("hardening.seccomp_unit", check.Probe{Name: "seccomp-unit", Cmd: "pid=$(systemctl show -p MainPID --value {hardening.seccomp_unit}); echo pid=$pid; grep -E '^Seccomp:' /proc/$pid/status"},
		"seccomp in use: the unit's main process runs under a seccomp filter (`Seccomp: 2`)", SeccompUnit),
	check.New("hardening.lockdown", check.Probe{Name: "lockdown", Cmd: "cat /sys/kernel/security/lockdown 2>/dev/null || echo '(no lockdown)'"},
		"the kernel lockdown mode (`/sys/kernel/security/lockdown`)", Lockdown),
	check.New("hardening.aslr", check.Probe{Name: "aslr", Cmd: `for i in 1 2; do echo run=$i; grep -E '\[stack\]|/libc[.-]' /proc/self/maps; done`},
		"ASLR by behaviour: two runs of one program map the stack and the C library at different addresses (or, promised off, at the same)", ASLR),
	check.New("hardening.elf_min_percent", check.Probe{Name: "elf-hardening", Cmd: check.Helper + " elf-hardening /usr/bin /usr/sbin /usr/lib /usr/lib64 /usr/libexec"},
		"the share of executables and shared objects under /usr (files with an execute bit, or with `.so` in their name) with PIE, full RELRO, a non-executable stack, the stack protector and FORTIFY is at least the profile's (read with debug/elf by the harness's helper)", ELFHardening),
	check.New("hardening.max_packages", packages,
		"at most the profile's number of packages installed (a minimal image)", MaxPackages),
	check.New("hardening.forbidden_packages", packages,
		"no installed package matches the profile's patterns (the graphical stack)", ForbiddenPackages),
}

// ASLR compares where the stack and the C library were mapped in two runs of grep (its
// /proc/self/maps, after a "run=N" line each): randomized means both moved.
func ASLR(want bool, out string) error {
	runs := map[string][2]string{} // run -> stack start, libc start
	var run string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if r, ok := strings.CutPrefix(l, "run="); ok {
			run = r
			continue
		}
		start, _, _ := strings.Cut(l, "-")
		a := runs[run]
		switch {
		case strings.HasSuffix(l, "[stack]") && a[0] == "":
			a[0] = start
		case strings.Contains(l, "/libc") && a[1] == "":
			a[1] = start
		}
		runs[run] = a
	}
	one, two := runs["1"], runs["2"]
	if one[0] == "" || one[1] == "" || two[0] == "" || two[1] == "" {
		return fmt.Errorf("aslr: expected the stack and libc mappings of two runs, got %q", strings.TrimSpace(out))
	}
	moved := one[0] != two[0] && one[1] != two[1]
	switch {
	case want && !moved:
		return fmt.Errorf("aslr: expected the stack and libc at new addresses in each run (randomize_va_space=2), got stack %s then %s, libc %s then %s", one[0], two[0], one[1], two[1])
	case !want && (one[0] != two[0] || one[1] != two[1]):
		return fmt.Errorf("aslr: expected fixed addresses (the profile promises no ASLR), got stack %s then %s, libc %s then %s", one[0], two[0], one[1], two[1])
	}
	return nil
}

// ELFHardening judges the helper's JSON report (elfscan.Report): each property the profile
// names reaches its least share, and the scan found programs at all.
func ELFHardening(want map[string]float64, out string) error {
	var r elfscan.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return fmt.Errorf("elf hardening: expected the helper's JSON report, got %q (%v)", abbrev(out), err)
	}
	if r.Executables == 0 || r.SharedObjects == 0 {
		return fmt.Errorf("elf hardening: expected executables and shared objects under /usr, got %d and %d", r.Executables, r.SharedObjects)
	}
	props := slices.Sorted(maps.Keys(want))
	var errs []error
	for _, p := range props {
		s, ok := r.Properties[p]
		if !ok {
			errs = append(errs, fmt.Errorf("elf hardening: the profile names %q, which the helper does not measure (it measures %s)", p, strings.Join(elfscan.Properties, ", ")))
			continue
		}
		if s.Percent() < want[p] {
			of := "executables and shared objects"
			if p == elfscan.PIE {
				of = "executables"
			}
			errs = append(errs, fmt.Errorf("elf hardening %s: expected at least %.1f%% of %s, got %.1f%% (%d of %d; without it: %s)",
				p, want[p], of, s.Percent(), s.Have, s.Total, strings.Join(s.Missing, ", ")))
		}
	}
	return check.Errors(errs...)
}

// MaxPackages counts the installed packages (one name a line).
func MaxPackages(max int, out string) error {
	n := len(strings.Fields(out))
	if n == 0 {
		return fmt.Errorf("installed packages: expected a list (from rpm or dpkg), got none")
	}
	if n > max {
		return fmt.Errorf("installed packages: expected at most %d (a minimal image), got %d", max, n)
	}
	return nil
}

// ForbiddenPackages fails on every installed package matching one of the patterns.
func ForbiddenPackages(patterns []string, out string) error {
	names := strings.Fields(out)
	if len(names) == 0 {
		return fmt.Errorf("installed packages: expected a list (from rpm or dpkg), got none")
	}
	var bad []string
	for _, n := range names {
		for _, p := range patterns {
			if ok, err := path.Match(p, n); err != nil {
				return fmt.Errorf("forbidden packages: the profile's pattern %q is invalid: %v", p, err)
			} else if ok {
				bad = append(bad, n+" (matches "+p+")")
				break
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("forbidden packages: expected none installed, got %s", strings.Join(bad, ", "))
	}
	return nil
}

func abbrev(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// Seccomp checks /proc/self/status says whether the kernel has seccomp: a "Seccomp:" line.
func Seccomp(want bool, out string) error {
	has := check.Field(out, "Seccomp") != ""
	switch {
	case want && !has:
		return fmt.Errorf("seccomp: expected a Seccomp: line in /proc/self/status (a kernel with seccomp), got %q", strings.TrimSpace(out))
	case !want && has:
		return fmt.Errorf("seccomp: expected none (the profile promises no seccomp), got %q", strings.TrimSpace(out))
	}
	return nil
}

// SeccompUnit checks the unit's main process status: "Seccomp: 2" is filter mode.
func SeccompUnit(unit, out string) error {
	if pid := check.Field(out, "pid"); pid == "" || pid == "0" {
		return fmt.Errorf("seccomp in use: expected %s running (a main PID), got %q", unit, strings.TrimSpace(out))
	}
	return check.Equal("seccomp mode of "+unit+"'s main process (2 = filter)", "2", check.Field(out, "Seccomp"))
}

// Lockdown checks the selected mode, the bracketed one in "none [integrity] confidentiality".
func Lockdown(want, out string) error {
	got, ok := check.Bracketed(out)
	if !ok {
		got = "(no lockdown: the kernel has no lockdown LSM)"
	}
	return check.Equal("kernel lockdown (/sys/kernel/security/lockdown)", want, got)
}

// ABI compares the exported symbols of the Tier-1 libraries ("[soname]" lines, then one
// "symbol@VERSION" a line: vmtest-probe abi) with the release's recorded baseline. A library or
// a symbol (at its version) that disappeared breaks every program linked against it: that
// fails, naming them. Symbols the baseline lacks are returned as added (reported, not failed).
func ABI(baseline, got string) (added []string, err error) {
	want, have := abiSymbols(baseline), abiSymbols(got)
	if len(want) == 0 {
		return nil, fmt.Errorf("abi: the baseline lists no library")
	}
	var removed []string
	libs := slices.Sorted(maps.Keys(want))
	for _, lib := range libs {
		h, ok := have[lib]
		if !ok {
			removed = append(removed, fmt.Sprintf("%s (the whole library: %d symbols)", lib, len(want[lib])))
			continue
		}
		for _, s := range slices.Sorted(maps.Keys(want[lib])) {
			if !h[s] {
				removed = append(removed, lib+": "+s)
			}
		}
		for _, s := range slices.Sorted(maps.Keys(h)) {
			if !want[lib][s] {
				added = append(added, lib+": "+s)
			}
		}
	}
	if len(removed) > 0 {
		shown := removed[:min(len(removed), 25)]
		more := ""
		if len(removed) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(removed)-len(shown))
		}
		return added, fmt.Errorf("abi: expected every symbol of the release's baseline, got %d missing: %s%s", len(removed), strings.Join(shown, ", "), more)
	}
	return added, nil
}

// abiSymbols reads vmtest-probe abi output: soname -> symbol set.
func abiSymbols(out string) map[string]map[string]bool {
	libs := map[string]map[string]bool{}
	var cur map[string]bool
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			cur = map[string]bool{}
			libs[strings.Trim(l, "[]")] = cur
		case cur != nil:
			cur[l] = true
		}
	}
	return libs
}
