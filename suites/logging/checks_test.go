package logging

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitAuditEnabled(t *testing.T) {
	require.NoError(t, AuditEnabled("active\n", "enabled 1\nfailure 1\npid 345\nrate_limit 0\n"))
	err := AuditEnabled("inactive\n", "enabled 0\nfailure 1\npid 0\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `auditd state: expected "active", got "inactive"`)
	assert.Contains(t, err.Error(), `expected "enabled 1", got "enabled 0"`)
}

func TestUnitAuditEvent(t *testing.T) {
	require.NoError(t, AuditEvent("k", "/var/tmp/x", 0, "type=PATH msg=audit(11/27/26 05:00:00.000:123) : item=1 name=/var/tmp/x"))
	err := AuditEvent("k", "/var/tmp/x", 1, "<no matches>")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected an event for /var/tmp/x, got (exit 1) "<no matches>"`)
}

func TestUnitJournalPersistent(t *testing.T) {
	good := "0123abcd\nFile path: /var/log/journal/0123abcd/system.journal\nFile path: /var/log/journal/0123abcd/user-1000.journal\n"
	require.NoError(t, JournalPersistent(good))
	err := JournalPersistent("0123abcd\nFile path: /run/log/journal/0123abcd/system.journal\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected all under /var/log/journal/0123abcd/ (persistent), got "/run/log/journal/0123abcd/system.journal"`)
	err = JournalPersistent("0123abcd\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "got none")
}

func TestUnitMarkerInPreviousBoot(t *testing.T) {
	require.NoError(t, MarkerInPreviousBoot("m1", 0, "m1\n"))
	err := MarkerInPreviousBoot("m1", 1, "Specifying boot ID or boot offset has no effect, no persistent journal was found.")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected the marker "m1" logged before the reboot, got (exit 1) "Specifying boot ID`)
}
