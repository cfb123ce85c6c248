package logging

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	auditOn  = "enabled 1\nfailure 1\npid 345\nrate_limit 0\n"
	auditOff = "enabled 0\nfailure 1\npid 0\n"
)

func TestUnitAudit(t *testing.T) {
	require.NoError(t, Audit(true, "active\n", auditOn))
	err := Audit(true, "inactive\n", auditOff)
	require.Error(t, err, "auditd promised, masked in the guest")
	assert.Contains(t, err.Error(), `auditd state: expected "active", got "inactive"`)
	assert.Contains(t, err.Error(), `expected "enabled 1", got "enabled 0"`)

	require.NoError(t, Audit(false, "inactive\n", auditOff))
	require.NoError(t, Audit(false, "inactive\n", ""), "no auditctl at all is off too")
	err = Audit(false, "active\n", auditOn)
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

func TestUnitJournal(t *testing.T) {
	persistent := "0123abcd\nFile path: /var/log/journal/0123abcd/system.journal\nFile path: /var/log/journal/0123abcd/user-1000.journal\n"
	volatile := "0123abcd\nFile path: /run/log/journal/0123abcd/system.journal\n"
	require.NoError(t, Journal(true, persistent))
	require.NoError(t, Journal(false, volatile))
	err := Journal(true, volatile)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected all under /var/log/journal/0123abcd/ (persistent), got "/run/log/journal/0123abcd/system.journal"`)
	err = Journal(false, persistent)
	require.Error(t, err, "a journal promised volatile that persists")
	assert.Contains(t, err.Error(), `expected all under /run/log/journal/0123abcd/ (volatile), got "/var/log/journal/0123abcd/system.journal"`)
	err = Journal(true, "0123abcd\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "got none")
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
