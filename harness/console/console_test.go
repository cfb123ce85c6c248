package console

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Recorded console lines, one per check, and lines that must not match.
var bad = map[string]string{
	"kernel panic":              "[   12.345678] Kernel panic - not syncing: sysrq triggered crash",
	"oops":                      "[    3.100000] Oops: general protection fault, probably for non-canonical address 0xdead: 0000 [#1] PREEMPT SMP NOPTI",
	"kernel BUG":                "[    5.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
	"kernel warning":            "[    7.000000] WARNING: CPU: 1 PID: 245 at drivers/gpu/drm/drm_atomic.c:100 foo+0x10/0x20",
	"call trace":                "[    7.100000] Call Trace:",
	"soft lockup":               "[   60.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]",
	"hard lockup":               "[   61.000000] NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
	"hung task":                 "[  242.000000] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
	"segfault":                  "[   20.000000] python3[812]: segfault at 0 ip 00007f0000000000 sp 00007ffc00000000 error 4 in libc.so.6",
	"emergency shell":           "You are in emergency mode. After logging in, type \"journalctl -xb\" to view",
	"root filesystem not found": "Gave up waiting for root file system device.  Common problems:",
	"systemd ordering cycle":    "[    2.000000] systemd[1]: cloud-init.service: Found ordering cycle on network-pre.target/start",
	"no bootable device":        "BdsDxe: No bootable option or device was found.",
	"boot loader rescue":        "grub rescue> ",
	"refused by Secure Boot":    "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x3,0x0): Access Denied",
}

var good = []string{
	"[    0.000000] Linux version 6.1.0-56-cloud-amd64",
	"BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0)",
	"error: no suitable video mode found.",
	"[  113.7] cloud-init[425]: ci-info: | 0 | 10.0.2.0 | 0.0.0.0 | 255.255.255.0 | enp0s1 | U |",
	"Debian GNU/Linux 12 vm ttyS0",
	"systemd[1]: Reached target multi-user.target - Multi-User System.",
}

func TestEveryCheckMatchesItsRecordedLine(t *testing.T) {
	for _, c := range Checks {
		line, ok := bad[c.Name]
		require.True(t, ok, "no recorded line for check %q", c.Name)
		hits := Scan([]Line{{N: 1, Text: line}}, []Check{c})
		assert.Len(t, hits, 1, "check %q does not match %q", c.Name, line)
	}
	for _, l := range good {
		assert.Empty(t, Scan([]Line{{N: 1, Text: l}}, Checks), "false positive on %q", l)
	}
}

func TestAllowSkipsNamedChecks(t *testing.T) {
	lines := []Line{{1, bad["kernel panic"]}, {2, bad["call trace"]}}
	assert.Len(t, Scan(lines, Checks), 2)
	assert.Empty(t, Scan(lines, Checks, "kernel panic", "call trace"))
}

func TestRecorderFatalIsImmediateAndCleansEscapes(t *testing.T) {
	r, err := NewRecorder(filepath.Join(t.TempDir(), "console.log"))
	require.NoError(t, err)
	defer r.Close()
	_, _ = r.Write([]byte("\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001\r\n[ 1.0] ok\n"))
	select {
	case <-r.Fatal():
		t.Fatal("fatal before any fatal line")
	default:
	}
	assert.Equal(t, "BdsDxe: starting Boot0001", r.Lines(0)[0].Text)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Line, 1)
	go func() {
		l, _ := r.WaitFor(ctx, 0, regexp.MustCompile(`sysrq`))
		got <- l
	}()
	_, _ = r.Write([]byte("[ 9.0] sysrq: Trigger a crash\n[ 9.1] Kernel panic - not"))
	_, _ = r.Write([]byte(" syncing: sysrq triggered crash\n"))
	select {
	case <-r.Fatal():
	case <-time.After(time.Second):
		t.Fatal("panic line did not trip Fatal")
	}
	assert.Contains(t, r.FatalError().Error(), "kernel panic at line 4")
	assert.Contains(t, (<-got).Text, "Trigger a crash")
}

func TestRecorderPromptWithoutNewlineIsFatal(t *testing.T) {
	r, err := NewRecorder(filepath.Join(t.TempDir(), "console.log"))
	require.NoError(t, err)
	defer r.Close()
	_, _ = r.Write([]byte("grub rescue> "))
	select {
	case <-r.Fatal():
	case <-time.After(time.Second):
		t.Fatal("grub rescue prompt did not trip Fatal")
	}
	assert.Contains(t, r.FatalError().Error(), "GRUB could not find")
}

// QEMU writes the serial port a byte at a time: a megabyte without a newline, and 100,000
// short lines, must cost linear time and bounded memory (a quadratic recorder took 19 s for
// 16 KiB and blocked Dead(), Run and the SSH wait meanwhile).
func TestRecorderIsLinearAndBounded(t *testing.T) {
	r, err := NewRecorder(filepath.Join(t.TempDir(), "console.log"))
	require.NoError(t, err)
	defer r.Close()
	start := time.Now()
	b := []byte{'A'}
	for i := 0; i < 1<<20; i++ { // 1 MiB, byte by byte, no newline (quadratic: hours)
		_, _ = r.Write(b)
	}
	assert.Less(t, time.Since(start), 20*time.Second, "1 MiB without a newline")
	assert.Equal(t, 1<<20/MaxLine, r.Len(), "a line that never ends is cut every MaxLine bytes")

	start = time.Now()
	line := []byte("[    1.000000] systemd[1]: Started something.\n")
	for i := 0; i < 100_000; i++ {
		_, _ = r.Write(line)
	}
	assert.Less(t, time.Since(start), 20*time.Second, "100,000 lines")
	assert.Equal(t, 1<<20/MaxLine+100_000, r.Len(), "Len counts every line")
	kept := r.Lines(0)
	assert.LessOrEqual(t, len(kept), KeepLines, "memory keeps a bounded tail")
	assert.Equal(t, r.Len(), kept[len(kept)-1].N, "line numbers stay absolute")
	assert.Len(t, r.Lines(r.Len()-3), 3)
	_, err = r.WaitFor(context.Background(), 0, regexp.MustCompile(`Started something`))
	require.NoError(t, err, "WaitFor from a dropped line starts at the oldest kept one")
	info, err := os.Stat(filepath.Join(filepath.Dir(r.file.Name()), "console.log"))
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20+100_000*len(line)), info.Size(), "the file keeps everything")
}

// The initramfs's own prompts and messages when the root filesystem is missing (a truncated
// image booted to "(initramfs)" and waited the whole boot timeout).
func TestRootNotFoundIsFatal(t *testing.T) {
	for _, l := range []string{
		"(initramfs) ",
		"dracut:/# ",
		"[  190.1] dracut-initqueue[312]: Warning: /dev/disk/by-uuid/cab7 does not exist",
		"Failed to mount /dev/vda2 as root file system.",
		"[    2.0] VFS: Unable to mount root fs on unknown-block(0,0)",
	} {
		r, err := NewRecorder(filepath.Join(t.TempDir(), "console.log"))
		require.NoError(t, err)
		_, _ = r.Write([]byte(l))
		select {
		case <-r.Fatal():
			assert.Contains(t, r.FatalError().Error(), "could not find or mount the root filesystem", l)
		default:
			if !strings.HasSuffix(l, " ") {
				_, _ = r.Write([]byte("\n"))
			}
			select {
			case <-r.Fatal():
			default:
				t.Errorf("%q is not fatal", l)
			}
		}
		r.Close()
	}
}
