// Package logging verifies logging and audit promises: auditd is active and enabled, a watch
// rule produces an event ausearch finds, and the journal is persistent across a reboot.
package logging

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("logging.auditd", check.Probe{Name: "audit-status", Cmd: "systemctl is-active auditd; sudo auditctl -s 2>&1"},
		"auditd active and `auditctl -s` enabled (or, not promised: neither)", Audit),
	check.New("logging.journal_persistent", check.Probe{Name: "journal-files", Cmd: "cat /etc/machine-id; sudo journalctl --header | grep -E '^File [Pp]ath:'"},
		"every journal file under `/var/log/journal/<machine-id>/` (or, volatile: `/run/log/journal/`)", Journal),
}

// Audit checks the auditd promise both ways from auditd's state (the first line) and `auditctl
// -s`. On: auditd active and "enabled 1" (or 2, locked). Off: auditd not active and auditing not
// enabled (auditctl may be missing altogether).
func Audit(want bool, out string) error {
	active, status, _ := strings.Cut(out, "\n")
	enabled := ""
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "enabled" {
			enabled = f[1]
		}
	}
	state := strings.TrimSpace(active)
	if want {
		errs := []error{check.Equal("auditd state", "active", state)}
		if enabled != "1" && enabled != "2" {
			errs = append(errs, fmt.Errorf("auditctl -s: expected \"enabled 1\", got \"enabled %s\"", enabled))
		}
		return check.Errors(errs...)
	}
	var errs []error
	if state == "active" || state == "activating" {
		errs = append(errs, fmt.Errorf("auditd state: expected not active (the profile promises no auditd), got %q", state))
	}
	if enabled == "1" || enabled == "2" {
		errs = append(errs, fmt.Errorf("auditctl -s: expected auditing off (the profile promises no auditd), got \"enabled %s\"", enabled))
	}
	return check.Errors(errs...)
}

// AuditEvent checks ausearch found an event for the watched path under key.
func AuditEvent(key, path string, exit int, out string) error {
	if exit != 0 || !strings.Contains(out, path) {
		return fmt.Errorf("ausearch -k %s: expected an event for %s, got (exit %d) %q", key, path, exit, strings.TrimSpace(out))
	}
	return nil
}

// Journal checks where the journal lives, both ways: persistent means every journal file is
// under /var/log/journal/<machine-id>/, volatile means every one is under /run/log/journal/.
func Journal(persistent bool, out string) error {
	if persistent {
		return journalUnder(out, "/var/log/journal/", "persistent")
	}
	return journalUnder(out, "/run/log/journal/", "volatile")
}

func journalUnder(out, root, kind string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := strings.TrimSpace(lines[0])
	want := root + id + "/"
	var files []string
	for _, l := range lines[1:] {
		if _, v, ok := strings.Cut(l, ":"); ok {
			files = append(files, strings.TrimSpace(v))
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("journal files: expected some under %s, got none", want)
	}
	for _, f := range files {
		if !strings.HasPrefix(f, want) {
			return fmt.Errorf("journal files: expected all under %s (%s), got %q", want, kind, f)
		}
	}
	return nil
}

// MarkerInPreviousBoot checks what `journalctl -b -1` kept of a marker logged before a reboot:
// a persistent journal has it, a volatile one does not.
func MarkerInPreviousBoot(persistent bool, marker string, exit int, out string) error {
	found := exit == 0 && strings.Contains(out, marker)
	switch {
	case persistent && !found:
		return fmt.Errorf("journalctl -b -1: expected the marker %q logged before the reboot, got (exit %d) %q", marker, exit, strings.TrimSpace(out))
	case !persistent && found:
		return fmt.Errorf("journalctl -b -1: expected no record of the marker %q (the profile promises a volatile journal), got %q", marker, strings.TrimSpace(out))
	}
	return nil
}
