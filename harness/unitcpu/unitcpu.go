// Package unitcpu reads where a Linux guest's CPU time went, by systemd unit: each service's and
// scope's CPUUsageNSec (systemd's cgroup accounting, kept for units that have finished) against
// the guest's whole busy time (/proc/uptime). A boot's critical chain says which unit others
// waited for; on a guest with one vCPU, whose units take turns on it (TCG), that is not who
// did the work. This says who did.
package unitcpu

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Command prints, in the guest, what the journal recorded of units that stopped (one JSON
// object a line: systemd logs each unit's CPU use as it stops, message
// ae8f7b866b0347b9af31fe1c80b127c0, read with sudo where the user may, nothing where not),
// every loaded service's and scope's CPU usage (systemctl show blocks), /proc/uptime and the
// number of CPUs online. Slices are left out: they add up their units. The journal's records
// count units that finished and that systemd then unloaded, whose usage systemctl no longer
// shows: cloud-init's single process (cloud-init-main.service, 24.3 and later) is one, the
// largest unit of a boot.
const Command = `sudo -n journalctl -b -q MESSAGE_ID=` + unitResourcesMessage + ` -o json --output-fields=UNIT,CPU_USAGE_NSEC 2>/dev/null; ` +
	`systemctl show -p Id -p CPUUsageNSec '*.service' '*.scope'; cat /proc/uptime; getconf _NPROCESSORS_ONLN`

// unitResourcesMessage is systemd's SD_MESSAGE_UNIT_RESOURCES: "<unit>: Consumed ... CPU time".
const unitResourcesMessage = "ae8f7b866b0347b9af31fe1c80b127c0"

// Unit is one unit's CPU time since it started (for a finished unit, what it used).
type Unit struct {
	Name     string
	CPU      time.Duration
	Unloaded bool // no longer loaded: CPU is what the journal recorded as it stopped
}

// Report is the guest's CPU time since its boot, by unit. All of it is in the guest's time,
// as its scheduler saw it: under TCG, time the host left the vCPU waiting counts for whatever
// ran on it then, so the numbers say where a boot goes on a quiet host, not on a busy one.
type Report struct {
	Units  []Unit        // busiest first
	Busy   time.Duration // the CPUs' time not idle since the boot: uptime × CPUs − idle
	Uptime time.Duration
}

// Parse reads Command's output. The busy time comes from /proc/uptime, whose idle time the
// kernel keeps exactly, not from /proc/stat's tick counts: a TCG guest starved by its host
// loses ticks (a restored stand-in whose boot ran beside other VMs counted 333 s in
// /proc/stat after 415 s up).
func Parse(out string) (Report, error) {
	var r Report
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		return r, fmt.Errorf("unitcpu: expected unit blocks, /proc/uptime and the number of CPUs, got %q", out)
	}
	cpus, err := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
	if err != nil || cpus <= 0 {
		return r, fmt.Errorf("unitcpu: expected the number of CPUs (getconf _NPROCESSORS_ONLN) last, got %q", lines[len(lines)-1])
	}
	var up, idle float64
	if n, _ := fmt.Sscanf(lines[len(lines)-2], "%g %g", &up, &idle); n != 2 {
		return r, fmt.Errorf("unitcpu: expected /proc/uptime (seconds up, seconds idle), got %q", lines[len(lines)-2])
	}
	r.Uptime = time.Duration(up * float64(time.Second))
	r.Busy = max(time.Duration((up*float64(cpus)-idle)*float64(time.Second)), 0)

	// The journal's records come first, a JSON object a line.
	stopped := map[string]time.Duration{}
	var order []string
	for len(lines) > 2 && strings.HasPrefix(lines[0], "{") {
		var rec struct {
			Unit  string `json:"UNIT"`
			Usage string `json:"CPU_USAGE_NSEC"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			return r, fmt.Errorf("unitcpu: a journal record that is not JSON: %q: %v", lines[0], err)
		}
		lines = lines[1:]
		ns, err := strconv.ParseUint(rec.Usage, 10, 64)
		if rec.Unit == "" || err != nil {
			continue // a record of another kind of resource, or with no CPU time
		}
		if _, ok := stopped[rec.Unit]; !ok {
			order = append(order, rec.Unit)
		}
		stopped[rec.Unit] += time.Duration(ns) // each record is one run of the unit
	}

	// systemctl show prints one block a unit, its properties in its own order, blocks apart by
	// an empty line.
	notSet := 0
	var id, usage string
	flush := func() error {
		defer func() { id, usage = "", "" }()
		switch {
		case id == "" && usage == "":
			return nil
		case id == "" || usage == "":
			return fmt.Errorf("unitcpu: expected Id and CPUUsageNSec in each block, got Id=%q CPUUsageNSec=%q", id, usage)
		case usage == "[not set]":
			notSet++
			return nil
		}
		ns, err := strconv.ParseUint(usage, 10, 64)
		if err != nil {
			return fmt.Errorf("unitcpu: %s: CPUUsageNSec=%q is not a count of nanoseconds", id, usage)
		}
		r.Units = append(r.Units, Unit{Name: id, CPU: time.Duration(ns)})
		return nil
	}
	for _, l := range lines[:len(lines)-2] {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		switch {
		case !ok:
			if err := flush(); err != nil {
				return r, err
			}
		case k == "Id":
			id = v
		case k == "CPUUsageNSec":
			usage = v
		}
	}
	if err := flush(); err != nil {
		return r, err
	}
	// A unit still loaded counts as systemctl shows it; one no longer loaded as the journal
	// recorded its runs.
	loaded := map[string]bool{}
	for _, u := range r.Units {
		loaded[u.Name] = true
	}
	for _, name := range order {
		if !loaded[name] {
			r.Units = append(r.Units, Unit{Name: name, CPU: stopped[name], Unloaded: true})
		}
	}
	if len(r.Units) == 0 {
		if notSet > 0 {
			return r, fmt.Errorf("unitcpu: systemd keeps no CPU usage for the guest's %d units: turn on DefaultCPUAccounting=yes (systemd-system.conf) in the image", notSet)
		}
		return r, fmt.Errorf("unitcpu: no unit in systemctl show's output: %q", out)
	}
	sort.SliceStable(r.Units, func(i, j int) bool { return r.Units[i].CPU > r.Units[j].CPU })
	return r, nil
}

// Sum is the CPU time of the units whose names match keep.
func (r Report) Sum(keep func(name string) bool) time.Duration {
	var d time.Duration
	for _, u := range r.Units {
		if keep(u.Name) {
			d += u.CPU
		}
	}
	return d
}

// Outside is the busy time no listed unit accounts for: the kernel's boot and the initramfs
// before the service manager started, the kernel's threads and interrupts, and units already
// unloaded whose end the journal did not show (no sudo, or a journal rotated away).
func (r Report) Outside() time.Duration {
	return max(r.Busy-r.Sum(func(string) bool { return true }), 0)
}

// String is a table, busiest first: each unit that used at least 50 ms of CPU, then the rest
// together, then the time outside the units.
func (r Report) String() string {
	const least = 50 * time.Millisecond
	var b strings.Builder
	fmt.Fprintf(&b, "guest CPU time by systemd unit since its boot: %.1f s busy of %.1f s up\n", r.Busy.Seconds(), r.Uptime.Seconds())
	pct := func(d time.Duration) float64 {
		if r.Busy <= 0 {
			return 0
		}
		return 100 * d.Seconds() / r.Busy.Seconds()
	}
	var rest time.Duration
	small := 0
	for _, u := range r.Units {
		if u.CPU < least {
			rest += u.CPU
			small++
			continue
		}
		note := ""
		if u.Unloaded {
			note = " (stopped and unloaded; from the journal)"
		}
		fmt.Fprintf(&b, "%8.2f s %5.1f%%  %s%s\n", u.CPU.Seconds(), pct(u.CPU), u.Name, note)
	}
	if small > 0 {
		fmt.Fprintf(&b, "%8.2f s %5.1f%%  (%d units under %v each)\n", rest.Seconds(), pct(rest), small, least)
	}
	fmt.Fprintf(&b, "%8.2f s %5.1f%%  (outside these units: the kernel and initramfs before the service manager, kernel threads, interrupts; unloaded units the journal did not show)\n", r.Outside().Seconds(), pct(r.Outside()))
	return b.String()
}
