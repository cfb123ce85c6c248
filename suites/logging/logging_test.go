package logging

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

func TestAuditWatchRuleRecordsEvent(t *testing.T) {
	if !harness.Want[bool](t, vm.Machine(t), "logging.auditd") {
		t.Skip("the profile promises no auditd: no watch rule can record (TestChecks/logging.auditd checks that auditing is off)")
	}
	m := harness.Boot(t) // its own VM: the test adds a watch rule
	n := time.Now().UnixNano()
	path, key := fmt.Sprintf("/var/tmp/vmtest-audit-%d", n), fmt.Sprintf("vmtest%d", n)
	// Watch an existing file, then write to it and change its attributes.
	m.MustRun(t, "touch "+path)
	m.MustRun(t, fmt.Sprintf("sudo auditctl -w %s -p wa -k %s", path, key))
	m.MustRun(t, fmt.Sprintf("echo azl-vmtest >> %s && chmod 0600 %s", path, path))
	// auditd writes asynchronously: look for up to 15 s, in one sudo (under TCG a sudo for each
	// of 60 looks cost a guest without the event 22 CPU-seconds more than a healthy guest's
	// test, one sudo and 30 looks 5). --input-logs: without a terminal on stdin ausearch reads
	// stdin instead of the logs.
	out, code := m.Output(t, fmt.Sprintf("sudo sh -c 'for i in $(seq 30); do ausearch --input-logs -k %s -i 2>/dev/null | grep -F %s && exit 0; sleep 0.5; done; ausearch --input-logs -k %s -i 2>&1; exit 1'", key, path, key))
	require.NoError(t, AuditEvent(key, path, code, out))
}

// TestJournalSurvivesReboot: a marker logged before a reboot is in the previous boot's journal
// (persistent), or is not (volatile).
func TestJournalSurvivesReboot(t *testing.T) {
	harness.Long(t, "its own VM and a reboot")
	want := harness.Want[bool](t, vm.Machine(t), "logging.journal_persistent")
	m := harness.Boot(t) // its own VM: the test reboots it
	marker := fmt.Sprintf("azl-vmtest-marker-%d", time.Now().UnixNano())
	m.MustRun(t, "logger -t azl-vmtest "+marker+" && sudo journalctl --sync")
	m.Reboot(t)
	out, code := m.Output(t, "sudo journalctl -b -1 --no-pager -o cat -t azl-vmtest")
	require.NoError(t, MarkerInPreviousBoot(want, marker, code, out))
}
