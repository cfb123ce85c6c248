package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sample() *Report {
	r := New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	r.Add("x86_64.boot.ready_s", "s", 80)
	r.Data["x86_64.boot.cpu_by_unit_s"] = map[string]any{"init.scope": 6.5}
	r.Show("x86_64.boot.cpu.init.scope", "s", 6.5)
	r.Add("x86_64.restore.ready_s", "s", 3.5)
	r.AddReference(650*time.Millisecond, 750*time.Millisecond) // 700 ms, ±7% within the run
	return r
}

func TestUnitTableAlone(t *testing.T) {
	got := sample().Table(nil)
	assert.Equal(t, `measure                                      value
x86_64.boot.ready_s                          80.00 s
x86_64.boot.cpu.init.scope                   6.50 s
x86_64.restore.ready_s                       3.50 s
host.reference_start_ms                      650.00 ms
host.reference_end_ms                        750.00 ms
host.reference_ms                            700.00 ms
`, got)
}

func TestUnitTableBesideAnEarlierReport(t *testing.T) {
	r := sample()
	b, err := r.JSON()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	before, err := Load(path)
	require.NoError(t, err)

	now := New(time.Now())
	now.Add("x86_64.boot.ready_s", "s", 100)
	now.Data["x86_64.boot.cpu_by_unit_s"] = map[string]any{"init.scope": 9.75}
	now.Show("x86_64.boot.cpu.init.scope", "s", 9.75)
	now.Add("x86_64.restore.first_command_s", "s", 4)            // not in the earlier report
	now.AddReference(850*time.Millisecond, 900*time.Millisecond) // 875 ms, ±3% within the run
	lines := strings.Split(strings.TrimSpace(now.Table(before)), "\n")
	require.Len(t, lines, 8)
	assert.Regexp(t, `^measure +value +before +change$`, lines[0])
	assert.Regexp(t, `^x86_64\.boot\.ready_s +100\.00 s +80\.00 s +\+25%$`, lines[1])
	assert.Regexp(t, `^x86_64\.boot\.cpu\.init\.scope +9\.75 s +6\.50 s +\+50%$`, lines[2], "a unit's CPU time is found in the earlier report's map")
	assert.Regexp(t, `^x86_64\.restore\.first_command_s +4\.00 s +-$`, lines[3])
	assert.Regexp(t, `^host\.reference_start_ms +850\.00 ms +650\.00 ms +\+31%$`, lines[4])
	assert.Regexp(t, `^host\.reference_ms +875\.00 ms +700\.00 ms +\+25%$`, lines[6])
	assert.Equal(t, "before: the bench of 2026-12-06T09:00:00Z. The host's reference moved +25% between them and ±7% within one; a TCG guest's work moves about twice as far as the reference (docs/performance.md), so a change within about ±64% may be the host's alone.", lines[7])
}

func TestUnitTableBesideAReportWithoutReference(t *testing.T) {
	now := sample()
	got := now.Table(map[string]any{"date": "2026-12-05T20:00:00Z", "x86_64.boot.ready_s": 72.0})
	assert.Contains(t, got, "80.00 s        72.00 s     +11%")
	assert.Contains(t, got, "before: the bench of 2026-12-05T20:00:00Z, which has no host reference: a change of up to 40% may be the host's alone.")
}

func TestUnitChange(t *testing.T) {
	assert.Equal(t, "+25%", Change(80, 100))
	assert.Equal(t, "-20%", Change(100, 80))
	assert.Equal(t, "+0%", Change(3, 3))
	assert.Equal(t, "-", Change(0, 3), "no change can be said from nothing")
}

func TestUnitLoadRefusesWhatIsNotAReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, os.WriteFile(path, []byte("measure value\n"), 0o644))
	_, err := Load(path)
	require.ErrorContains(t, err, path+" is not a bench report")
	_, err = Load(filepath.Join(t.TempDir(), "none.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestUnitReferenceDoesTheSameWorkEachTime(t *testing.T) {
	a := referenceWork()
	assert.Equal(t, a, referenceWork(), "the reference's work is fixed: only the host may change its time")
	assert.Positive(t, Reference(1))
}
