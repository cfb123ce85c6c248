package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/timeline"
)

// BootStages are offsets from QEMU's start. Kernel and SSHDActive are derived from the guest's
// own clocks (uptime and systemd's monotonic timestamps) once SSH works, so they need no
// console output (quiet kernels print nothing).
type BootStages struct {
	QEMU       time.Duration // QMP answered
	Restore    time.Duration // a restored machine: saved state loaded and the guest resumed
	Firmware   time.Duration // firmware handed over to the boot loader (console), 0 if unseen
	Kernel     time.Duration // kernel started
	SSHDActive time.Duration // the guest's sshd unit became active
	SSH        time.Duration // first successful SSH handshake with the pinned key
	// SSHAttempt and Banner: when the connection of the first login was opened, and when sshd's
	// banner came on it. With SSHDActive they split the readiness gap (GapParts).
	SSHAttempt time.Duration
	Banner     time.Duration
	// FirstCommand: a restored machine's first command answered (the refresh's read of the
	// guest's uptime, as the user over the kept connection), before the refresh's root step.
	FirstCommand time.Duration
	CloudInit    time.Duration // cloud-init's last stage finished (its record), or `cloud-init status --wait` returned
	Ready        time.Duration // systemctl is-system-running --wait returned
	// ReadinessGap is SSH - SSHDActive: from sshd active to the first login (GapParts splits it).
	ReadinessGap time.Duration
	// RoundTrip is one trivial command's round trip on the kept connection.
	RoundTrip time.Duration
}

// Marks are the stages in order, for the timeline picture (timeline.SVG).
func (b BootStages) Marks() []timeline.Mark {
	if b.Restore > 0 {
		return []timeline.Mark{{Name: "QEMU up", At: b.QEMU}, {Name: "state restored", At: b.Restore}, {Name: "SSH", At: b.SSH},
			{Name: "first command", At: b.FirstCommand}, {Name: "ready", At: b.Ready}}
	}
	return []timeline.Mark{{Name: "QEMU up", At: b.QEMU}, {Name: "firmware", At: b.Firmware}, {Name: "kernel", At: b.Kernel},
		{Name: "sshd active", At: b.SSHDActive}, {Name: "SSH", At: b.SSH}, {Name: "cloud-init", At: b.CloudInit}, {Name: "ready", At: b.Ready}}
}

func (b BootStages) String() string {
	if b.Restore > 0 {
		return fmt.Sprintf("qemu %.1fs, restored %.1fs, banner %.1fs, ssh %.1fs, first command %.1fs, ready %.1fs",
			b.QEMU.Seconds(), b.Restore.Seconds(), b.Banner.Seconds(), b.SSH.Seconds(), b.FirstCommand.Seconds(), b.Ready.Seconds())
	}
	return fmt.Sprintf("qemu %.1fs, firmware %.1fs, kernel %.1fs, sshd active %.1fs, ssh %.1fs (gap %.2fs%s), cloud-init %.1fs, ready %.1fs, round trip %.0fms",
		b.QEMU.Seconds(), b.Firmware.Seconds(), b.Kernel.Seconds(), b.SSHDActive.Seconds(), b.SSH.Seconds(),
		b.ReadinessGap.Seconds(), b.gapText(), b.CloudInit.Seconds(), b.Ready.Seconds(), float64(b.RoundTrip.Microseconds())/1000)
}

// GapParts splits the readiness gap (sshd active to the first login) into what the harness and
// what the guest spent: notice, from sshd active until the harness opened the connection that
// logged in (0 when it was already open, held by user-net until sshd listened); answer, from then
// until sshd's banner came (the guest accepting it and starting sshd's child for it); handshake,
// from the banner to the login (key exchange, authentication). They add up to ReadinessGap. ok
// is false when a stage is unknown.
func (b BootStages) GapParts() (notice, answer, handshake time.Duration, ok bool) {
	if b.SSHDActive == 0 || b.Banner == 0 || b.SSH == 0 {
		return 0, 0, 0, false
	}
	from := max(b.SSHAttempt, b.SSHDActive)
	return from - b.SSHDActive, b.Banner - from, b.SSH - b.Banner, true
}

func (b BootStages) gapText() string {
	notice, answer, handshake, ok := b.GapParts()
	if !ok {
		return ""
	}
	return fmt.Sprintf(": connection opened %.2fs, banner %.2fs, handshake %.2fs", notice.Seconds(), answer.Seconds(), handshake.Seconds())
}

var debugSSH = os.Getenv("VMTEST_DEBUG_SSH") != ""

// SSH readiness: an attempt that fails fast (sshd not listening yet: the guest resets the
// connection) is retried after SSHPollInterval. One that hears nothing (user-net accepts on the
// host before the guest's network is up, or sshd is slow under load) is left waiting for its
// banner for up to SSHBannerWait, and after SSHStagger a second and a third attempt join it, so
// that a stuck connection never delays noticing sshd. Never more than SSHMaxAttempts at once:
// measured here, four attempts abandoned every 2 s on a loaded host kept sshd's unauthenticated
// children piling up (MaxStartups), and a guest never answered in 10 minutes. Once an attempt
// hears sshd's banner it goes on alone: the others are closed and none joins it. Under TCG a
// handshake takes longer than SSHStagger, and sshd accepts at once every connection user-net
// held for it, so each companion was a key exchange, a login and a PAM session the guest ran for
// nothing (three accepted logins in a boot, 2026-12-03) while its boot still needed the CPU.
const (
	SSHPollInterval = 100 * time.Millisecond
	SSHStagger      = time.Second
	SSHBannerWait   = 15 * time.Second
	SSHMaxAttempts  = 3
)

var firmwareHandoff = regexp.MustCompile(`BdsDxe: starting|Booting .+`)

func (m *Machine) log(format string, args ...any) {
	m.mu.Lock()
	f := m.logf
	m.mu.Unlock()
	f(format, args...)
}

func (m *Machine) stage(what string, d time.Duration) {
	m.log("vm %s: +%.1fs %s", m.name, d.Seconds(), what)
}

// waitReady runs the readiness stages: SSH handshake with the pinned key, cloud-init done,
// systemd done. Each wait races QEMU exiting and fatal console signs, so a dead guest fails at
// once with the console tail.
func (m *Machine) waitReady(ctx context.Context) error {
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if _, err := m.console.WaitFor(wctx, 0, firmwareHandoff); err == nil {
			m.Stages.Firmware = time.Since(m.started)
		}
	}()
	if err := m.dialSSH(ctx); err != nil {
		return err
	}
	m.Stages.SSH = time.Since(m.started)
	stopWatch()
	m.stage("SSH handshake with the pinned host key", m.Stages.SSH)
	m.guestTimes(ctx)
	if m.cfg.SkipReady {
		return nil
	}
	if err := m.waitCloudInit(ctx); err != nil {
		return err
	}
	if err := m.waitSystemd(ctx); err != nil {
		return err
	}
	m.Stages.Ready = time.Since(m.started)
	t0 := time.Now()
	if _, err := m.Run(ctx, "true"); err == nil {
		m.Stages.RoundTrip = time.Since(t0)
	}
	m.stage("ready: "+m.Stages.String(), m.Stages.Ready)
	return nil
}

// dialSSH tries the handshake until one attempt works, the guest dies or ctx ends (see the
// SSH readiness constants for how attempts overlap).
func (m *Machine) dialSSH(ctx context.Context) error {
	gctx, cancel := m.guard(ctx)
	defer cancel()
	type result struct {
		c                *ssh.Client
		err              error
		superseded       bool          // closed because another attempt heard sshd first
		opened, answered time.Duration // the attempt's start, and its banner (0 if none came)
	}
	results := make(chan result)
	inflight := 0
	var lastStart time.Time
	// The first attempt to hear sshd's banner carries on alone: the others are closed at once
	// (sshd accepts every connection user-net held for it when it starts listening) and no new
	// one joins it while it runs.
	var mu sync.Mutex
	cancels := map[int]context.CancelFunc{}
	heard, lastID := 0, 0 // heard: the attempt that heard sshd first and still runs, 0 if none
	sshdHeard := func() bool { mu.Lock(); defer mu.Unlock(); return heard != 0 }
	attempt := func() {
		inflight++
		lastStart = time.Now()
		lastID++
		id := lastID
		actx, acancel := context.WithCancel(gctx)
		mu.Lock()
		cancels[id] = acancel
		mu.Unlock()
		opened := lastStart.Sub(m.started)
		go func() {
			cfg := m.sshCfg
			cfg.BannerTimeout = SSHBannerWait
			cfg.HandshakeTimeout = 30 * time.Second
			var answered time.Duration
			cfg.Answered = func() {
				answered = time.Since(m.started)
				mu.Lock()
				defer mu.Unlock()
				if heard == 0 {
					heard = id
					for other, cancel := range cancels {
						if other != id {
							cancel()
						}
					}
				}
			}
			c, err := ssh.Dial(actx, cfg)
			mu.Lock()
			delete(cancels, id)
			if heard == id {
				heard = 0
			}
			mu.Unlock()
			superseded := err != nil && actx.Err() != nil && gctx.Err() == nil
			acancel()
			results <- result{c, err, superseded, opened, answered}
		}()
	}
	// Attempts still running when one has won are closed as they end.
	defer func() {
		go func(n int) {
			for ; n > 0; n-- {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}(inflight)
	}()
	tick := time.NewTicker(SSHPollInterval)
	defer tick.Stop()
	attempt()
	var lastErr error
	var mismatchSince time.Time
	for {
		select {
		case r := <-results:
			inflight--
			if r.superseded {
				continue
			}
			if r.err == nil {
				m.mu.Lock()
				m.client = r.c
				m.mu.Unlock()
				if m.Stages.Banner == 0 { // the machine's first login, not a reconnection
					m.Stages.SSHAttempt, m.Stages.Banner = r.opened, r.answered
				}
				return nil
			}
			lastErr = r.err
			if debugSSH {
				stderrLog("vm %s: +%.2fs SSH attempt opened at +%.2fs: %v", m.name, time.Since(m.started).Seconds(), r.opened.Seconds(), r.err)
			}
			if m.inst == nil && (ssh.IsHostKeyMismatch(r.err) || strings.Contains(r.err.Error(), "unable to authenticate")) {
				// An existing machine (ssh target): no seed is on its way to fix either.
				return fmt.Errorf("%w (check VMTEST_SSH_HOST_KEY and VMTEST_SSH_KEY)", r.err)
			}
			if ssh.IsHostKeyMismatch(r.err) {
				// A guest may briefly run sshd with a generated key before cloud-init installs
				// ours; a mismatch that persists means the seed was not applied.
				if mismatchSince.IsZero() {
					mismatchSince = time.Now()
				} else if time.Since(mismatchSince) > time.Minute {
					return fmt.Errorf("the guest's SSH host key is not the one the harness injected through cloud-init (for a minute): %w; was the cidata seed applied? (NoCloud in datasource_list)", r.err)
				}
			}
		case <-tick.C:
			if inflight == 0 || (inflight < SSHMaxAttempts && !sshdHeard() && time.Since(lastStart) >= SSHStagger) {
				attempt()
			}
		case <-gctx.Done():
			if d := m.Dead(); d != nil {
				return fmt.Errorf("guest died while waiting for SSH: %w", d)
			}
			if lastErr == nil {
				lastErr = gctx.Err()
			}
			return fmt.Errorf("no SSH login within the boot timeout (%s; VMTEST_BOOT_TIMEOUT): last error: %v\nconsole tail:\n%s", m.cfg.BootTimeout, lastErr, m.consoleTail(30))
		}
		if d := m.Dead(); d != nil {
			return fmt.Errorf("guest died while waiting for SSH: %w", d)
		}
	}
}

// guestTimes derives kernel start and sshd activation from the guest's clocks: sshd's
// activation on the guest's monotonic clock, and the guest's uptime mapped onto the host's
// clock at the middle of the command that read it. The uptime is read in a command of its own
// after the first: a login's first command can wait seconds for the user's service manager
// (pam_systemd starts it, under TCG behind cloud-init: 9 s in a boot on 2026-12-05), and the
// middle of that wait put the kernel's start and sshd's activation seconds too early. A
// second command's round trip bounds the mapping's error (half of it).
func (m *Machine) guestTimes(ctx context.Context) {
	res, err := m.Run(ctx, "systemctl show -p ActiveEnterTimestampMonotonic --value sshd.service ssh.service 2>/dev/null | grep -m1 -v '^0*$'")
	if err != nil || res.ExitCode != 0 {
		return
	}
	mono, err := strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64)
	if err != nil {
		return
	}
	up, sent, answered, err := m.guestUptime(ctx)
	if err != nil {
		return
	}
	mid := sent.Add(answered.Sub(sent) / 2).Sub(m.started)
	m.Stages.Kernel = mid - up
	m.Stages.SSHDActive = m.Stages.Kernel + time.Duration(mono)*time.Microsecond
	m.Stages.ReadinessGap = m.Stages.SSH - m.Stages.SSHDActive
	m.stage("kernel started (from guest uptime)", m.Stages.Kernel)
	m.stage(fmt.Sprintf("sshd active in the guest (logged in %.2fs later%s)", m.Stages.ReadinessGap.Seconds(), m.Stages.gapText()), m.Stages.SSHDActive)
}

// guestUptime reads the guest's uptime in a command of its own, with the host's times when that
// command was sent and when it answered: the guest read its clock between the two.
func (m *Machine) guestUptime(ctx context.Context) (up time.Duration, sent, answered time.Time, err error) {
	sent = time.Now()
	res, err := m.Run(ctx, "cat /proc/uptime")
	answered = time.Now()
	if err != nil {
		return 0, sent, answered, err
	}
	f := strings.Fields(string(res.Stdout))
	if res.ExitCode != 0 || len(f) == 0 {
		return 0, sent, answered, fmt.Errorf("/proc/uptime said %q (exit %d)", res.Stdout, res.ExitCode)
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, sent, answered, fmt.Errorf("/proc/uptime: %w", err)
	}
	return time.Duration(s * float64(time.Second)), sent, answered, nil
}

// cloudInitRecordCmd waits for the boot's jobs (cloud-init's last stage is one of them: its
// documented way to wait through systemd) and prints cloud-init's own record of this boot:
// result.json, written when its last stage ends, and status.json (each stage's start, end and
// errors), both in /run/cloud-init and readable by anyone, and its failed units (cloud-init >=
// 24.1 reports a failed unit as an error even when its record has none). Shell and systemctl
// only: `cloud-init status --wait` starts Python, 3-5 s of guest CPU under TCG, while the
// guest's own cloud-init stages still need it.
const cloudInitRecordCmd = `timeout 900 systemctl is-system-running --wait >/dev/null 2>&1
printf 'now=%s\n' "$(date +%s.%N)"
printf 'result=%s\n' "$(tr -d '\n' 2>/dev/null </run/cloud-init/result.json)"
printf 'status=%s\n' "$(tr -d '\n' 2>/dev/null </run/cloud-init/status.json)"
printf 'failed=%s\n' "$(systemctl list-units --failed --no-legend --plain 'cloud-*' 2>&1 | tr '\n' ' ')"`

// cloudInitRecord reads cloudInitRecordCmd's output. done: result.json was there, so cloud-init
// has finished this boot; clean: it recorded no error, recoverable or not, and none of its units
// failed (a systemctl that cannot tell is not clean either). finishedAgo is how long before the
// guest's `date` modules-final finished (by the guest's clock), 0 if unknown.
func cloudInitRecord(out string) (done, clean bool, finishedAgo time.Duration) {
	var now float64
	var result, status string
	failed := "unknown"
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "now":
			now, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		case "result":
			result = v
		case "status":
			status = v
		case "failed":
			failed = strings.TrimSpace(v)
		}
	}
	// An error, recoverable or not, counts wherever cloud-init put it: result.json, or a stage's
	// entry in status.json (cloud-init >= 23.4 files recoverable ones by stage).
	type record struct {
		Errors            []json.RawMessage            `json:"errors"`
		RecoverableErrors map[string][]json.RawMessage `json:"recoverable_errors"`
		Finished          float64                      `json:"finished"`
	}
	errorFree := func(r record) bool {
		n := len(r.Errors)
		for _, errs := range r.RecoverableErrors {
			n += len(errs)
		}
		return n == 0
	}
	var res struct {
		V1 *record `json:"v1"`
	}
	if strings.TrimSpace(result) == "" || json.Unmarshal([]byte(result), &res) != nil || res.V1 == nil {
		return false, false, 0
	}
	clean = errorFree(*res.V1) && failed == ""
	var st struct {
		V1 map[string]json.RawMessage `json:"v1"`
	}
	if json.Unmarshal([]byte(status), &st) != nil {
		return true, false, 0 // result.json says done; a status.json that does not parse is not clean
	}
	for stage, raw := range st.V1 { // every stage cloud-init lists, whatever its version names
		if t := strings.TrimSpace(string(raw)); t == "" || t[0] != '{' {
			continue // the datasource's name, the running stage's
		}
		var r record
		if json.Unmarshal(raw, &r) != nil {
			clean = false
			continue
		}
		clean = clean && errorFree(r)
		if stage == "modules-final" && now > 0 && r.Finished > 0 && r.Finished <= now {
			finishedAgo = time.Duration((now - r.Finished) * float64(time.Second))
		}
	}
	return true, clean, finishedAgo
}

// waitCloudInit waits for cloud-init to finish this boot. A clean finish is read from
// cloud-init's record (cloudInitRecordCmd); anything else (no record: cloud-init disabled,
// absent or not in the boot's jobs; errors of any kind) is judged by `cloud-init status`, as
// cloud-init itself reports it.
func (m *Machine) waitCloudInit(ctx context.Context) error {
	rec, err := m.Run(ctx, cloudInitRecordCmd)
	if err != nil {
		return fmt.Errorf("waiting for cloud-init: %w", err)
	}
	if done, clean, ago := cloudInitRecord(string(rec.Stdout)); done && clean {
		learned := time.Since(m.started)
		m.Stages.CloudInit = learned
		if ago > 0 && ago < learned {
			m.Stages.CloudInit = learned - ago
		}
		m.stage("cloud-init done", m.Stages.CloudInit)
		return nil
	}
	res, err := m.Run(ctx, "timeout 900 cloud-init status --wait --long")
	if err != nil {
		return fmt.Errorf("waiting for cloud-init: %w", err)
	}
	m.Stages.CloudInit = time.Since(m.started)
	out := strings.TrimSpace(string(res.Stdout))
	switch res.ExitCode {
	case 0:
		m.stage("cloud-init done", m.Stages.CloudInit)
	case 2: // cloud-init >= 23.4: finished with recoverable errors; the suites judge them
		m.stage("cloud-init done with recoverable errors:\n"+out, m.Stages.CloudInit)
	default:
		log, _ := m.Run(ctx, "sudo tail -n 40 /var/log/cloud-init.log")
		return fmt.Errorf("cloud-init failed (cloud-init status exited %d):\n%s\n/var/log/cloud-init.log tail:\n%s", res.ExitCode, out, log.Stdout)
	}
	return nil
}

// waitSystemd waits for the boot to finish; "degraded" is reported with the failed units (the
// boot suite judges it), anything else that is not "running" is an error.
func (m *Machine) waitSystemd(ctx context.Context) error {
	res, err := m.Run(ctx, "timeout 900 systemctl is-system-running --wait")
	if err != nil {
		return fmt.Errorf("waiting for systemd: %w", err)
	}
	state := strings.TrimSpace(string(res.Stdout))
	switch state {
	case "running":
		m.stage("systemd: running", time.Since(m.started))
	case "degraded":
		failed, _ := m.Run(ctx, "systemctl --failed --no-legend --plain")
		m.stage("systemd: degraded; failed units:\n"+strings.TrimSpace(string(failed.Stdout)), time.Since(m.started))
	default:
		return fmt.Errorf("systemd did not finish booting: is-system-running says %q (exit %d)", state, res.ExitCode)
	}
	return nil
}
