package selftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/bench"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
	"github.com/azl-vmtest/azl-vmtest/harness/unitcpu"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// TestBenchReport measures the harness (make bench): per architecture, a real boot's stages
// and readiness gap (and its parts), the guest's CPU time to ready by systemd unit, a fresh
// handshake, a command's round trip (and how much of it is the session's channel), a probe's
// cost in a RunAll batch, the saved state's boot and save times and a restore's stages (medians of up to 3: the state loaded, sshd's banner, the
// first SSH handshake, the first command answered, ready); with the last make test's wall time
// and VM counts (_artifacts/vmtests.json), and the host's reference time before and after
// (harness/bench). It prints one table, beside the last bench's report (or VMTEST_BENCH_BASE's)
// with each measure's change, and writes _artifacts/bench.json.
func TestBenchReport(t *testing.T) {
	if os.Getenv("VMTEST_BENCH") != "1" {
		t.Skip("a benchmark: run it with make bench (sets VMTEST_BENCH=1)")
	}
	cfg, err := harness.ConfigFromEnv()
	require.NoError(t, err)
	// What this run is compared with: VMTEST_BENCH_BASE, or the last bench's report.
	basePath := os.Getenv("VMTEST_BENCH_BASE")
	if basePath == "" {
		basePath = filepath.Join(cfg.Artifacts, "bench.json")
	}
	base, err := bench.Load(basePath)
	if err != nil && (!errors.Is(err, os.ErrNotExist) || os.Getenv("VMTEST_BENCH_BASE") != "") {
		require.NoError(t, err, "VMTEST_BENCH_BASE names the bench.json to compare with")
	}
	report := bench.New(time.Now())
	add := report.Add
	// The host's speed, before and after: the reference's work never changes.
	refStart := bench.Reference(5)
	for _, a := range arch.All() {
		img := standin.ImagePath(standin.CacheDir(), a, standin.Standard)
		if os.Getenv("VMTEST_IMAGE") != "" {
			if a.Name != cfg.Arch.Name {
				continue
			}
			img = cfg.Image
		}
		if _, err := os.Stat(img); err != nil {
			t.Logf("%s: no image (%s): run make image", a.Name, img)
			continue
		}
		opts := []harness.Option{harness.WithArch(a), harness.WithImage(img)}
		p := a.Name + "."
		func() {
			m, err := harness.Start(t.Context(), "bench-boot-"+a.Name, t.Logf, append(opts, harness.WithFreshBoot())...)
			require.NoError(t, err)
			defer m.Close()
			s := m.Stages
			add(p+"boot.firmware_s", "s", s.Firmware.Seconds())
			add(p+"boot.kernel_s", "s", s.Kernel.Seconds())
			add(p+"boot.sshd_active_s", "s", s.SSHDActive.Seconds())
			add(p+"boot.first_ssh_s", "s", s.SSH.Seconds())
			add(p+"boot.cloud_init_done_s", "s", s.CloudInit.Seconds())
			add(p+"boot.ready_s", "s", s.Ready.Seconds())
			add(p+"boot.readiness_gap_s", "s", s.ReadinessGap.Seconds())
			// The gap's parts: the harness opening the connection that logged in, sshd's banner
			// on it, the handshake.
			if notice, answer, handshake, ok := s.GapParts(); ok {
				add(p+"boot.gap_connection_opened_s", "s", notice.Seconds())
				add(p+"boot.gap_banner_s", "s", answer.Seconds())
				add(p+"boot.gap_handshake_s", "s", handshake.Seconds())
			}
			ctx := t.Context()
			// Who used the guest's CPU to get there (harness/unitcpu): the busy time, cloud-init's
			// four stages together, the busiest units, and what no unit accounts for. An image
			// whose service manager keeps no CPU time per unit gets the rest of the bench.
			cpu, err := m.Run(ctx, unitcpu.Command)
			require.NoError(t, err)
			if uc, err := unitcpu.Parse(string(cpu.Stdout)); err != nil {
				t.Logf("%s: no CPU time by unit (exit %d, %s): %v", a.Name, cpu.ExitCode, strings.TrimSpace(string(cpu.Stderr)), err)
			} else {
				t.Logf("%s at ready:\n%s", a.Name, uc)
				add(p+"boot.cpu_busy_s", "s", uc.Busy.Seconds())
				add(p+"boot.cpu_cloud_init_s", "s", uc.Sum(isCloudInitStage).Seconds())
				add(p+"boot.cpu_outside_units_s", "s", uc.Outside().Seconds())
				byUnit := map[string]float64{}
				for i, u := range uc.Units {
					if i < 6 {
						report.Show(p+"boot.cpu."+u.Name, "s", u.CPU.Seconds())
					}
					if u.CPU >= 50*time.Millisecond {
						byUnit[u.Name] = u.CPU.Seconds()
					}
				}
				report.Data[p+"boot.cpu_by_unit_s"] = byUnit
			}
			hs, err := m.HandshakeTime(ctx)
			require.NoError(t, err)
			add(p+"ssh.handshake_ms", "ms", bench.Millis(hs))
			const n = 20
			var runs, chans []time.Duration
			for range n {
				t0 := time.Now()
				_, err := m.Run(ctx, "true")
				require.NoError(t, err)
				runs = append(runs, time.Since(t0))
				c, err := m.SessionSetupTime(ctx)
				require.NoError(t, err)
				chans = append(chans, c)
			}
			add(p+"ssh.round_trip_ms", "ms", bench.Millis(median(runs)))
			add(p+"ssh.session_setup_ms", "ms", bench.Millis(median(chans)))
			probes := make([]string, n)
			for i := range probes {
				probes[i] = "cat /proc/sys/kernel/osrelease"
			}
			t0 := time.Now()
			res, err := m.RunAll(ctx, probes...)
			require.NoError(t, err)
			require.Len(t, res, n)
			add(p+"ssh.runall_per_probe_ms", "ms", bench.Millis(time.Since(t0))/n)
			// The harness's own cost a probe: one that starts no program.
			for i := range probes {
				probes[i] = "read v < /proc/sys/kernel/osrelease; echo $v"
			}
			t0 = time.Now()
			_, err = m.RunAll(ctx, probes...)
			require.NoError(t, err)
			add(p+"ssh.runall_builtin_probe_ms", "ms", bench.Millis(time.Since(t0))/n)
		}()
		var loaded, banners, handshakes, firsts, restores []time.Duration
		var key string
		for i := range 3 {
			m, err := harness.Start(t.Context(), fmt.Sprintf("bench-restore-%s-%d", a.Name, i), t.Logf, opts...)
			require.NoError(t, err)
			// The first may have had to build the state first (a boot, not a restore): only
			// restores count. Stages count from the restoring QEMU's start.
			if k, ok := m.Restored(); ok {
				key = k
				loaded = append(loaded, m.Stages.Restore)
				banners = append(banners, m.Stages.Banner)
				handshakes = append(handshakes, m.Stages.SSH)
				firsts = append(firsts, m.Stages.FirstCommand)
				restores = append(restores, m.Stages.Ready)
			}
			m.Close()
		}
		require.NotEmpty(t, restores, "none of the three VMs was restored from a saved state")
		// Where a restore's time goes: the state loaded and the guest resumed, sshd's banner, the
		// first SSH handshake, the first command answered (the refresh's uptime read, as the
		// user), then the rest of the refresh (the clock, entropy, the root shell) to ready.
		add(p+"restore.loaded_s", "s", median(loaded).Seconds())
		add(p+"restore.banner_s", "s", median(banners).Seconds())
		add(p+"restore.ssh_s", "s", median(handshakes).Seconds())
		add(p+"restore.first_command_s", "s", median(firsts).Seconds())
		add(p+"restore.ready_s", "s", median(restores).Seconds())
		root, err := savedstate.Root()
		require.NoError(t, err)
		st, err := savedstate.Open(root, key)
		require.NoError(t, err)
		add(p+"save.boot_s", "s", st.Meta.BootTime.Seconds())
		add(p+"save.save_s", "s", st.Meta.SaveTime.Seconds())
		if fi, err := os.Stat(st.Path(savedstate.MemoryFile)); err == nil {
			add(p+"save.memory_state_mb", "MB", float64(fi.Size())/1e6)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Artifacts, "vmtests.json")); err == nil {
		var last map[string]any
		if json.Unmarshal(b, &last) == nil {
			for _, k := range slices.Sorted(maps.Keys(last)) {
				if v, ok := last[k].(float64); ok {
					add("make_test."+k, "", v)
				}
			}
		}
	}
	report.AddReference(refStart, bench.Reference(5))
	fmt.Print(report.Table(base))
	b, err := report.JSON()
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(cfg.Artifacts, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Artifacts, "bench.json"), b, 0o644))
	t.Logf("wrote %s", filepath.Join(cfg.Artifacts, "bench.json"))
}

// isCloudInitStage: cloud-init's services, its stages among them (cloud-init-local,
// cloud-init, cloud-config, cloud-final; cloud-init-main and cloud-init-network in releases
// since 24.3, whose stages share one process).
func isCloudInitStage(unit string) bool {
	return strings.HasPrefix(unit, "cloud-") && strings.HasSuffix(unit, ".service")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
