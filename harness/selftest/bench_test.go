package selftest

import (
	"context"
	"testing"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// BenchmarkBoot boots the image and reports its stages (seconds from QEMU start), the readiness
// gap (sshd active in the guest -> first SSH login), a fresh SSH handshake and the per-command
// round trip on the kept connection. Run with `make bench` (-benchtime 1x).
func BenchmarkBoot(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx := context.Background()
		m, err := harness.Start(ctx, "bench", b.Logf)
		if err != nil {
			b.Fatal(err)
		}
		s := m.Stages
		b.ReportMetric(s.Firmware.Seconds(), "firmware_s")
		b.ReportMetric(s.Kernel.Seconds(), "kernel_s")
		b.ReportMetric(s.SSHDActive.Seconds(), "sshd_active_s")
		b.ReportMetric(s.SSH.Seconds(), "first_ssh_s")
		b.ReportMetric(s.ReadinessGap.Seconds(), "readiness_gap_s")
		b.ReportMetric(s.CloudInit.Seconds(), "cloudinit_done_s")
		b.ReportMetric(s.Ready.Seconds(), "ready_s")

		const n = 20
		start := time.Now()
		for j := 0; j < n; j++ {
			if _, err := m.Run(ctx, "true"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds())/n, "cmd_roundtrip_ms")
		hs, err := m.HandshakeTime(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(hs.Milliseconds()), "ssh_handshake_ms")
		m.Close()
	}
}
