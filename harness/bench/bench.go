// Package bench holds make bench's report: its measures in order, a reference time for the
// host's own speed, and the comparison of a report with an earlier one. Under TCG a guest runs
// as fast as the host lets it, and a shared host here has moved every boot by up to 40% between
// two runs an hour apart with nothing changed: a comparison that does not say how much the host
// moved cannot tell a change from the host.
package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// The report's keys for the host's reference time (Reference), in milliseconds: measured
// before and after the bench, and their mean.
const (
	ReferenceStartKey = "host.reference_start_ms"
	ReferenceEndKey   = "host.reference_end_ms"
	ReferenceKey      = "host.reference_ms"
)

// Report is one bench run: each measure by name, in the order measured, and what was written
// to bench.json (the measures and any other data, such as the CPU time of every unit).
type Report struct {
	Data  map[string]any
	order []row
}

type row struct {
	name, unit string
	value      float64
}

// New starts a report dated now.
func New(now time.Time) *Report {
	return &Report{Data: map[string]any{"date": now.UTC().Format(time.RFC3339)}}
}

// Add records a measure (a number in unit) under name.
func (r *Report) Add(name, unit string, v float64) {
	r.Data[name] = v
	r.order = append(r.order, row{name, unit, v})
}

// Show puts a measure in the table without its own key in the data (one kept in a map there,
// such as one unit's CPU time).
func (r *Report) Show(name, unit string, v float64) { r.order = append(r.order, row{name, unit, v}) }

// AddReference records the host's reference time before and after the bench, and their mean.
func (r *Report) AddReference(start, end time.Duration) {
	r.Add(ReferenceStartKey, "ms", Millis(start))
	r.Add(ReferenceEndKey, "ms", Millis(end))
	r.Add(ReferenceKey, "ms", Millis((start+end)/2))
}

// Millis is d in milliseconds, as the report's "ms" measures are.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// drift is how far a report's reference moved within its own run, from its mean to either end
// (0 where it has no start and end).
func drift(m map[string]any) float64 {
	start, ok1 := m[ReferenceStartKey].(float64)
	end, ok2 := m[ReferenceEndKey].(float64)
	if !ok1 || !ok2 || start+end == 0 {
		return 0
	}
	return math.Abs(start-end) / (start + end)
}

// JSON is the report as bench.json holds it.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r.Data, "", "  ") }

// Load reads an earlier bench.json.
func Load(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not a bench report: %w", path, err)
	}
	return m, nil
}

// value finds a measure in an earlier report: its own key, or, for a shown measure named
// <arch>.boot.cpu.<unit>, the unit's entry in <arch>.boot.cpu_by_unit_s.
func value(m map[string]any, name string) (float64, bool) {
	if v, ok := m[name].(float64); ok {
		return v, true
	}
	if prefix, unit, ok := strings.Cut(name, ".boot.cpu."); ok {
		if units, ok := m[prefix+".boot.cpu_by_unit_s"].(map[string]any); ok {
			v, ok := units[unit].(float64)
			return v, ok
		}
	}
	return 0, false
}

// Table prints the measures, one a line; given an earlier report (before, may be nil), with
// its value and the change beside each measure both have, and a closing line that says how much
// the host's reference moved between the two (and within either, from its mean to its start or
// end) and so which changes could be the host's own: a guest's work under TCG moved about twice
// as far as the reference, measured on this project's shared host (docs/performance.md).
func (r *Report) Table(before map[string]any) string {
	var b strings.Builder
	if before == nil {
		fmt.Fprintf(&b, "%-44s %s\n", "measure", "value")
		for _, x := range r.order {
			fmt.Fprintf(&b, "%-44s %s\n", x.name, format(x.value, x.unit))
		}
		return b.String()
	}
	when, _ := before["date"].(string)
	fmt.Fprintf(&b, "%-44s %14s %14s %8s\n", "measure", "value", "before", "change")
	for _, x := range r.order {
		old, ok := value(before, x.name)
		if !ok {
			fmt.Fprintf(&b, "%-44s %14s %14s\n", x.name, format(x.value, x.unit), "-")
			continue
		}
		fmt.Fprintf(&b, "%-44s %14s %14s %8s\n", x.name, format(x.value, x.unit), format(old, x.unit), Change(old, x.value))
	}
	now, okNow := r.Data[ReferenceKey].(float64)
	old, okOld := before[ReferenceKey].(float64)
	switch {
	case okNow && okOld && old > 0:
		within := math.Max(drift(r.Data), drift(before))
		band := 2 * (math.Abs(now/old-1) + within) * 100
		fmt.Fprintf(&b, "before: the bench of %s. The host's reference moved %s between them and ±%.0f%% within one; a TCG guest's work moves about twice as far as the reference (docs/performance.md), so a change within about ±%.0f%% may be the host's alone.\n", when, Change(old, now), within*100, band)
	default:
		fmt.Fprintf(&b, "before: the bench of %s, which has no host reference: a change of up to 40%% may be the host's alone.\n", when)
	}
	return b.String()
}

// Change is the relative change from old to now, as a signed percentage.
func Change(old, now float64) string {
	if old == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.0f%%", (now/old-1)*100)
}

func format(v float64, unit string) string {
	if unit == "" {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// Reference times a fixed piece of CPU work on the host, the median of rounds runs: building a
// hash map of a million integers and following a random cycle through 16 MiB of memory. Both
// miss the caches the way a TCG guest's translated code and its soft TLB do, so the reference
// moves with what other work on the host (or its neighbours on a shared machine) leaves of the
// caches and the clock, as a TCG boot does. Its work never changes: only the host can move it.
func Reference(rounds int) time.Duration {
	times := make([]time.Duration, rounds)
	for i := range times {
		t0 := time.Now()
		sink = referenceWork()
		times[i] = time.Since(t0)
	}
	slices.Sort(times)
	return times[len(times)/2]
}

var sink uint64 // keeps the reference's result, so its work is never left out

func referenceWork() uint64 {
	const n = 1 << 22 // 4 Mi entries of 4 bytes: 16 MiB
	x := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { // xorshift64: the same sequence every run
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	m := make(map[uint64]uint64, 1<<20)
	for range 1 << 20 {
		k := next()
		m[k%(1<<21)] += k
	}
	// A single cycle through every entry (Sattolo's shuffle), followed n steps.
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := n - 1; i > 0; i-- {
		j := next() % uint64(i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	var sum uint64
	p := uint32(0)
	for range n {
		p = perm[p]
		sum += uint64(p)
	}
	return sum + uint64(len(m))
}
