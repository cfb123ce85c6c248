package logging

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

// The promise of no auditd, judged on the stand-in's answers (auditd on, and masked).
func TestUnitAuditOff(t *testing.T) {
	on := fixtures.Read(t, "standin", "audit-status", "good-x86_64.txt")
	require.NoError(t, Audit(false, "inactive\nenabled 0\nfailure 1\npid 0\n"))
	require.NoError(t, Audit(false, "inactive\nsudo: auditctl: command not found\n"), "no auditctl at all is off too")
	err := Audit(false, on)
	require.Error(t, err, "auditd promised off, running in the guest")
	assert.Contains(t, err.Error(), `auditd state: expected not active (the profile promises no auditd), got "active"`)
	assert.Contains(t, err.Error(), `expected auditing off (the profile promises no auditd), got "enabled 1"`)
}

func TestUnitAuditEvent(t *testing.T) {
	require.NoError(t, AuditEvent("k", "/var/tmp/x", 0, "type=PATH msg=audit(11/27/26 05:00:00.000:123) : item=1 name=/var/tmp/x"))
	err := AuditEvent("k", "/var/tmp/x", 1, "<no matches>")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected an event for /var/tmp/x, got (exit 1) "<no matches>"`)
}

// The promise of a volatile journal, judged on the stand-in's persistent answer.
func TestUnitJournalVolatile(t *testing.T) {
	persistent := fixtures.Read(t, "standin", "journal-files", "good-x86_64.txt")
	volatile := strings.ReplaceAll(persistent, "/var/log/journal/", "/run/log/journal/")
	require.NoError(t, Journal(false, volatile))
	err := Journal(false, persistent)
	require.Error(t, err, "a journal promised volatile that persists")
	assert.Contains(t, err.Error(), "(volatile), got \"/var/log/journal/")
}

func TestUnitMarkerInPreviousBoot(t *testing.T) {
	const lost = "Specifying boot ID or boot offset has no effect, no persistent journal was found."
	require.NoError(t, MarkerInPreviousBoot(true, "m1", 0, "m1\n"))
	require.NoError(t, MarkerInPreviousBoot(false, "m1", 1, lost))
	err := MarkerInPreviousBoot(true, "m1", 1, lost)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected the marker "m1" logged before the reboot, got (exit 1) "Specifying boot ID`)
	err = MarkerInPreviousBoot(false, "m1", 0, "m1\n")
	require.Error(t, err, "a journal promised volatile that kept the previous boot")
	assert.Contains(t, err.Error(), `expected no record of the marker "m1" (the profile promises a volatile journal), got "m1"`)
}
