// Package selinux verifies the SELinux promises: the mode (getenforce, sestatus, the LSM list),
// the loaded policy, file labels, the domains of the system's services, and enforcement shown by
// behaviour: a login whose authorized_keys carries the wrong label is refused and logged.
package selinux

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// status is getenforce, the active LSMs and sestatus in one answer.
var status = check.Probe{Name: "selinux-status", Cmd: "echo getenforce=$(getenforce 2>&1); echo lsm=$(cat /sys/kernel/security/lsm); sestatus 2>&1; true"}

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("selinux.mode", status,
		"the mode: `getenforce`, sestatus's current mode and mode from config, and `selinux` among the active LSMs (or, disabled, none of them)", Mode),
	check.New("selinux.policy", status, "sestatus's loaded policy name", Policy),
	check.New("selinux.mls", status, "sestatus's `Policy MLS status` enabled, or disabled", MLS),
	check.New("selinux.file_contexts", check.Probe{Name: "file-contexts", Cmd: "ls -dZ {selinux.file_contexts} 2>&1; true"},
		"each listed file's label has this type (`ls -Z`)", FileContexts),
	check.New("selinux.domains", check.Probe{Name: "domains", Cmd: "ps -eo label=,ppid=,comm="},
		"each listed service's daemon (its process started by systemd) runs in this domain (`ps -eZ`)", Domains),
}

// Mode checks the mode both ways. On (enforcing or permissive): getenforce and both sestatus
// modes say it, and selinux is an active LSM. Disabled: getenforce says Disabled and selinux is
// not an active LSM.
func Mode(want, out string) error {
	lsm := strings.Split(check.Field(out, "lsm"), ",")
	active := false
	for _, l := range lsm {
		active = active || strings.TrimSpace(l) == "selinux"
	}
	got := strings.ToLower(check.Field(out, "getenforce"))
	if want == "disabled" {
		errs := []error{check.Equal("getenforce", "disabled", got)}
		if active {
			errs = append(errs, fmt.Errorf("active LSMs: expected no selinux (the profile promises SELinux disabled), got %q", check.Field(out, "lsm")))
		}
		return check.Errors(errs...)
	}
	errs := []error{
		check.Equal("getenforce", want, got),
		check.Equal("sestatus current mode", want, check.Field(out, "Current mode")),
		check.Equal("sestatus mode from config file", want, check.Field(out, "Mode from config file")),
	}
	if !active {
		errs = append(errs, fmt.Errorf("active LSMs (/sys/kernel/security/lsm): expected selinux among them, got %q", check.Field(out, "lsm")))
	}
	return check.Errors(errs...)
}

// Policy checks the loaded policy's name.
func Policy(want, out string) error {
	return check.Equal("sestatus loaded policy name", want, check.Field(out, "Loaded policy name"))
}

// MLS checks sestatus's MLS status, both ways.
func MLS(want bool, out string) error {
	exp := map[bool]string{true: "enabled", false: "disabled"}[want]
	return check.Equal("sestatus policy MLS status", exp, check.Field(out, "Policy MLS status"))
}

// FileContexts reads `ls -dZ` ("user:role:type:level path" a line) and checks each path's type.
func FileContexts(want map[string]string, out string) error {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if parts := strings.Split(f[0], ":"); len(parts) >= 3 {
			got[f[1]] = parts[2]
		}
	}
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(want)) {
		t, ok := got[p]
		if !ok {
			errs = append(errs, fmt.Errorf("label of %s: expected type %s, got no label (ls -Z: %q)", p, want[p], lineFor(out, p)))
			continue
		}
		errs = append(errs, check.Equal("label type of "+p, want[p], t))
	}
	return check.Errors(errs...)
}

// Domains reads `ps -eo label=,ppid=,comm=` and checks that the daemon of each listed name (its
// processes whose parent is PID 1) runs in its domain; comm is the name cut to 15 characters,
// as the kernel keeps it. Children are left out: sshd's per-login process runs in the user's
// domain by design.
func Domains(want map[string]string, out string) error {
	got := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != "1" {
			continue
		}
		parts := strings.Split(f[0], ":")
		if len(parts) < 3 {
			continue
		}
		got[f[2]] = append(got[f[2]], parts[2])
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(want)) {
		comm := name
		if len(comm) > 15 {
			comm = comm[:15]
		}
		doms := got[comm]
		if len(doms) == 0 {
			errs = append(errs, fmt.Errorf("domain of %s: expected %s, got no %s process started by systemd", name, want[name], name))
			continue
		}
		for _, d := range doms {
			if d != want[name] {
				errs = append(errs, fmt.Errorf("domain of %s: expected %s, got %s", name, want[name], d))
				break
			}
		}
	}
	return check.Errors(errs...)
}

// Enforced judges the behaviour test: a key login to the guest's own sshd whose
// authorized_keys was labelled with the wrong type (exit code of the ssh client), and the
// denial records logged meanwhile. Enforcing: refused, with sshd_t's AVC on authorized_keys and
// permissive=0. Permissive: allowed, with the same AVC and permissive=1.
func Enforced(mode string, sshExit int, avcs string) error {
	var rec string
	for _, l := range strings.Split(avcs, "\n") {
		if strings.Contains(l, "authorized_keys") && strings.Contains(l, ":sshd_t:") {
			rec = l
			break
		}
	}
	switch mode {
	case "enforcing":
		errs := []error{}
		if sshExit == 0 {
			errs = append(errs, fmt.Errorf("login with a mislabelled authorized_keys: expected refused (SELinux enforcing), got a shell"))
		}
		if !strings.Contains(rec, "permissive=0") {
			errs = append(errs, fmt.Errorf("denial record: expected sshd_t's AVC on authorized_keys with permissive=0, got %q", strings.TrimSpace(avcs)))
		}
		return check.Errors(errs...)
	case "permissive":
		errs := []error{}
		if sshExit != 0 {
			errs = append(errs, fmt.Errorf("login with a mislabelled authorized_keys: expected allowed (SELinux permissive), got exit %d", sshExit))
		}
		if !strings.Contains(rec, "permissive=1") {
			errs = append(errs, fmt.Errorf("denial record: expected sshd_t's AVC on authorized_keys with permissive=1, got %q", strings.TrimSpace(avcs)))
		}
		return check.Errors(errs...)
	}
	return fmt.Errorf("selinux.mode: %q is not enforcing or permissive", mode)
}

func lineFor(out, path string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, path) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
