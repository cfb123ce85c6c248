package unitcpu

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// standin-x86_64.txt is Command's output from a restored x86-64 stand-in (its saved state's
// boot ran beside make test's other VMs, so its units used more than a quiet boot's).
func TestParseRecordedGuest(t *testing.T) {
	b, err := os.ReadFile("testdata/standin-x86_64.txt")
	require.NoError(t, err)
	r, err := Parse(string(b))
	require.NoError(t, err)
	require.Len(t, r.Units, 39)
	assert.Equal(t, Unit{Name: "cloud-init.service", CPU: 35254363000}, r.Units[0], "busiest first")
	for i := 1; i < len(r.Units); i++ {
		assert.GreaterOrEqual(t, r.Units[i-1].CPU, r.Units[i].CPU)
	}
	// 414.73 s up, 73.83 s idle, one CPU.
	assert.Equal(t, 340900*time.Millisecond, r.Busy.Round(time.Millisecond))
	assert.Equal(t, 414730*time.Millisecond, r.Uptime)
	cloudInit := r.Sum(func(n string) bool { return strings.HasPrefix(n, "cloud-") })
	assert.Greater(t, cloudInit, 22*time.Second)
	assert.Equal(t, r.Busy-r.Sum(func(string) bool { return true }), r.Outside())
	assert.Positive(t, r.Outside())

	s := r.String()
	assert.Contains(t, s, "340.9 s busy of 414.7 s up")
	assert.Regexp(t, `(?m)^\s+35\.25 s\s+10\.3%  cloud-init\.service$`, s)
	assert.Contains(t, s, "outside these units")
}

// standin-x86_64-cloud-init-25.txt is Command's output from a restored x86-64 stand-in with
// cloud-init 25.1, whose single process (cloud-init-main.service) had finished and been unloaded
// when it was read: only the journal still held what it used.
func TestParseCountsUnloadedUnitsFromTheJournal(t *testing.T) {
	b, err := os.ReadFile("testdata/standin-x86_64-cloud-init-25.txt")
	require.NoError(t, err)
	r, err := Parse(string(b))
	require.NoError(t, err)
	assert.Equal(t, Unit{Name: "cloud-init-main.service", CPU: 25516876000, Unloaded: true}, r.Units[0], "busiest first")
	assert.Contains(t, r.Units, Unit{Name: "session-1.scope", CPU: 2313702000, Unloaded: true})
	assert.Regexp(t, `(?m)^\s+25\.52 s\s+22\.9%  cloud-init-main\.service \(stopped and unloaded; from the journal\)$`, r.String())
	assert.Greater(t, r.Sum(func(n string) bool { return strings.HasPrefix(n, "cloud-") }), 25*time.Second)
}

func TestParseCountsALoadedUnitOnceAndSumsUnloadedRuns(t *testing.T) {
	r, err := Parse(`{"CPU_USAGE_NSEC":"1000000000","UNIT":"a.service"}` + "\n" +
		`{"CPU_USAGE_NSEC":"2000000000","UNIT":"gone.service"}` + "\n" +
		`{"UNIT":"io-only.service","IO_METRIC_READ_BYTES":"5"}` + "\n" +
		`{"CPU_USAGE_NSEC":"500000000","UNIT":"gone.service"}` + "\n" +
		"Id=a.service\nCPUUsageNSec=1000000000\n\n10.00 4.00\n1\n")
	require.NoError(t, err)
	assert.Equal(t, []Unit{{Name: "gone.service", CPU: 2500 * time.Millisecond, Unloaded: true}, {Name: "a.service", CPU: time.Second}}, r.Units,
		"a loaded unit as systemctl shows it, not again from the journal; an unloaded one's runs summed; a record without CPU time left out")
	assert.Equal(t, 2500*time.Millisecond, r.Outside())

	_, err = Parse("{not json\nId=a.service\nCPUUsageNSec=1\n\n10.00 4.00\n1\n")
	assert.ErrorContains(t, err, "a journal record that is not JSON")
}

func TestParseEitherPropertyOrder(t *testing.T) {
	r, err := Parse("Id=a.service\nCPUUsageNSec=1000000000\n\nCPUUsageNSec=3000000000\nId=b.scope\n" +
		"3.50 2.00\n2\n")
	require.NoError(t, err)
	assert.Equal(t, []Unit{{Name: "b.scope", CPU: 3 * time.Second}, {Name: "a.service", CPU: time.Second}}, r.Units)
	assert.Equal(t, 5*time.Second, r.Busy, "two CPUs for 3.5 s, 2 s of it idle")
	assert.Equal(t, time.Second, r.Outside())
}

func TestStringGathersTheSmallUnits(t *testing.T) {
	r, err := Parse("Id=a.service\nCPUUsageNSec=2000000000\n\nId=b.service\nCPUUsageNSec=30000000\n\n" +
		"Id=c.scope\nCPUUsageNSec=20000000\n\n4.00 1.00\n1\n")
	require.NoError(t, err)
	assert.Equal(t, "guest CPU time by systemd unit since its boot: 3.0 s busy of 4.0 s up\n"+
		"    2.00 s  66.7%  a.service\n"+
		"    0.05 s   1.7%  (2 units under 50ms each)\n"+
		"    0.95 s  31.7%  (outside these units: the kernel and initramfs before the service manager, kernel threads, interrupts; unloaded units the journal did not show)\n",
		r.String())
}

func TestParseRefusesWhatIsNotItsOutput(t *testing.T) {
	const tail = "12.50 3.00\n1\n"
	for name, c := range map[string]struct{ out, want string }{
		"accounting off": {"Id=a.service\nCPUUsageNSec=[not set]\n\nId=b.service\nCPUUsageNSec=[not set]\n" + tail,
			"systemd keeps no CPU usage for the guest's 2 units: turn on DefaultCPUAccounting=yes"},
		"no units":          {tail, "no unit in systemctl show's output"},
		"usage without id":  {"CPUUsageNSec=5\n\n" + tail, `expected Id and CPUUsageNSec in each block, got Id="" CPUUsageNSec="5"`},
		"not nanoseconds":   {"Id=a.service\nCPUUsageNSec=lots\n" + tail, `a.service: CPUUsageNSec="lots" is not a count`},
		"no CPU count":      {"Id=a.service\nCPUUsageNSec=5\n12.50 3.00\n", "expected the number of CPUs"},
		"no uptime":         {"Id=a.service\nCPUUsageNSec=5\nup\n1\n", "expected /proc/uptime"},
		"too short to read": {"1\n", "expected unit blocks"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}
