// Package logging verifies logging and audit promises: auditd is active and enabled, a watch
// rule produces an event ausearch finds, and the journal is persistent across a reboot.
package logging

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Commands whose output the checks read.
const (
	CmdAuditdActive = "systemctl is-active auditd"
	CmdAuditStatus  = "sudo auditctl -s"
	CmdJournalFiles = "cat /etc/machine-id; sudo journalctl --header | grep -E '^File [Pp]ath:'"
)

// AuditEnabled checks auditd is active and `auditctl -s` says "enabled 1" (or 2, locked).
func AuditEnabled(active, status string) error {
	enabled := ""
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "enabled" {
			enabled = f[1]
		}
	}
	errs := []error{check.Equal("auditd state", "active", strings.TrimSpace(active))}
	if enabled != "1" && enabled != "2" {
		errs = append(errs, fmt.Errorf("auditctl -s: expected \"enabled 1\", got \"enabled %s\"", enabled))
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

// JournalPersistent checks every journal file is under /var/log/journal/<machine-id>/.
func JournalPersistent(out string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := strings.TrimSpace(lines[0])
	want := "/var/log/journal/" + id + "/"
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
			return fmt.Errorf("journal files: expected all under %s (persistent), got %q", want, f)
		}
	}
	return nil
}

// MarkerInPreviousBoot checks `journalctl -b -1` output contains the marker.
func MarkerInPreviousBoot(marker string, exit int, out string) error {
	if exit != 0 || !strings.Contains(out, marker) {
		return fmt.Errorf("journalctl -b -1: expected the marker %q logged before the reboot, got (exit %d) %q", marker, exit, strings.TrimSpace(out))
	}
	return nil
}
