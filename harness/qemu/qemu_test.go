package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
)

func argv(t *testing.T, archName, accel string) string {
	a, err := arch.Lookup(archName)
	require.NoError(t, err)
	if _, _, err := a.Firmware(); err != nil {
		t.Skipf("needs %s UEFI firmware: %v", archName, err)
	}
	c := Config{Name: "t", Arch: a, MemoryMB: 1024, CPUs: 2, Accel: accel, NetRestricted: true,
		Drives: []Drive{{ID: "cidata", Path: "/s.iso", Format: "raw", ReadOnly: true}}}
	args, err := c.Argv("/d/overlay.qcow2", "/d/vars.fd", "/d/qmp.sock", map[int]int{22: 2222, 8080: 3333})
	require.NoError(t, err)
	return strings.Join(args, " ")
}

func TestArgvPerArchitecture(t *testing.T) {
	x := argv(t, "x86_64", AccelTCG)
	for _, want := range []string{"-machine q35", fmt.Sprintf("-accel tcg,thread=multi,tb-size=%d -cpu max", TCGCodeBufferMB), "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/",
		"file=/d/vars.fd", "file=/d/overlay.qcow2", "hostfwd=tcp:127.0.0.1:2222-:22", "hostfwd=tcp:127.0.0.1:3333-:8080",
		"restrict=on", "id=cidata,format=raw,file=/s.iso,readonly=on", "-qmp unix:/d/qmp.sock,server=on,wait=off", "-serial chardev:console", "-nodefaults"} {
		assert.Contains(t, x, want)
	}
	assert.Contains(t, argv(t, "x86_64", AccelKVM), "-accel kvm -cpu host")
	a := argv(t, "aarch64", AccelTCG)
	assert.Contains(t, a, "-machine virt")
	assert.Contains(t, a, "-cpu max,pauth-impdef=on")
	assert.Contains(t, a, "/usr/share/AAVMF/AAVMF_CODE.fd")
}

func TestArgvSecureBoot(t *testing.T) {
	for _, c := range []struct {
		arch, code, vars string
		smm              bool
	}{
		{"x86_64", "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", true},
		{"aarch64", "/usr/share/AAVMF/AAVMF_CODE.ms.fd", "/usr/share/AAVMF/AAVMF_VARS.ms.fd", false},
	} {
		t.Run(c.arch, func(t *testing.T) {
			a, err := arch.Lookup(c.arch)
			require.NoError(t, err)
			code, vars, err := a.SecureBootFirmware()
			if err != nil {
				t.Skipf("needs %s Secure Boot firmware: %v", c.arch, err)
			}
			assert.Equal(t, c.code, code)
			assert.Equal(t, c.vars, vars)
			cfg := Config{Name: "t", Arch: a, MemoryMB: 1024, CPUs: 2, Accel: AccelTCG, SecureBoot: true}
			args, err := cfg.Argv("/d/overlay.qcow2", "/d/vars.fd", "/d/qmp.sock", map[int]int{22: 2222})
			require.NoError(t, err)
			s := strings.Join(args, " ")
			assert.Contains(t, s, "if=pflash,format=raw,unit=0,readonly=on,file="+c.code)
			if c.smm {
				assert.Contains(t, s, "-machine "+a.Machine+",smm=on")
				assert.Contains(t, s, "-global driver=cfi.pflash01,property=secure,value=on")
			} else {
				assert.Contains(t, s, "-machine "+a.Machine+" ")
				assert.NotContains(t, s, "smm")
			}
			// Without Secure Boot: the plain firmware, no SMM.
			cfg.SecureBoot = false
			args, err = cfg.Argv("/d/overlay.qcow2", "/d/vars.fd", "/d/qmp.sock", map[int]int{22: 2222})
			require.NoError(t, err)
			s = strings.Join(args, " ")
			assert.NotContains(t, s, "smm=on")
			assert.NotContains(t, s, c.code+" ")
		})
	}
}

func TestResolveAccel(t *testing.T) {
	x, _ := arch.Lookup("x86_64")
	a, _ := arch.Lookup("aarch64")
	got, _, err := ResolveAccel("tcg", x)
	require.NoError(t, err)
	assert.Equal(t, AccelTCG, got)
	_, _, err = ResolveAccel("hvf", x)
	assert.ErrorContains(t, err, "use auto, kvm or tcg")
	// A foreign architecture never gets KVM.
	if !a.Native() {
		got, why, err := ResolveAccel("auto", a)
		require.NoError(t, err)
		assert.Equal(t, AccelTCG, got)
		assert.Contains(t, why, "KVM cannot run aarch64")
		_, _, err = ResolveAccel("kvm", a)
		assert.ErrorContains(t, err, "VMTEST_ACCEL=kvm but KVM is not usable")
	}
}

func TestInspect(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("needs qemu-img: run scripts/host-setup.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	_, err := Inspect(ctx, filepath.Join(dir, "nope.qcow2"), dir)
	assert.ErrorContains(t, err, "nope.qcow2")
	_, err = Inspect(ctx, "", dir)
	assert.ErrorContains(t, err, "VMTEST_IMAGE")

	// A qcow2 with a GPT passes; a blank one is "no partition table"; an overlay over it works.
	raw := filepath.Join(dir, "disk.raw")
	require.NoError(t, os.WriteFile(raw, make([]byte, 4<<20), 0o644))
	_, err = Inspect(ctx, raw, dir)
	assert.ErrorContains(t, err, "no partition table")
	if _, err := exec.LookPath("sfdisk"); err == nil {
		require.NoError(t, exec.Command("sh", "-c", "echo 'label: gpt' | sfdisk -q "+raw).Run())
		q := filepath.Join(dir, "disk.qcow2")
		require.NoError(t, exec.Command("qemu-img", "convert", "-O", "qcow2", raw, q).Run())
		info, err := Inspect(ctx, q, dir)
		require.NoError(t, err)
		assert.Equal(t, "qcow2", info.Format)
		ov := filepath.Join(dir, "ov.qcow2")
		require.NoError(t, CreateOverlay(ctx, info, ov))
		oi, err := Inspect(ctx, ov, dir)
		require.NoError(t, err)
		assert.Equal(t, q, oi.BackingFile)

		// A raw disk cut short: its GPT's backup header is gone.
		short := filepath.Join(dir, "short.raw")
		require.NoError(t, exec.Command("sh", "-c", "head -c 3145728 "+raw+" > "+short).Run())
		_, err = Inspect(ctx, short, dir)
		assert.ErrorContains(t, err, "is truncated: its GPT puts the backup header at sector 8191, past the image's end")

		// A qcow2 with data, cut in half: qemu-img check finds it (a truncated download).
		full := filepath.Join(dir, "full.raw")
		require.NoError(t, exec.Command("sh", "-c", "head -c 8388608 /dev/urandom > "+full+" && echo 'label: gpt' | sfdisk -q "+full).Run())
		fq := filepath.Join(dir, "full.qcow2")
		require.NoError(t, exec.Command("qemu-img", "convert", "-O", "qcow2", full, fq).Run())
		_, err = Inspect(ctx, fq, dir)
		require.NoError(t, err)
		st, err := os.Stat(fq)
		require.NoError(t, err)
		require.NoError(t, os.Truncate(fq, st.Size()/2))
		start := time.Now()
		_, err = Inspect(ctx, fq, dir)
		assert.ErrorContains(t, err, "is a corrupt or truncated qcow2 (qemu-img check failed)")
		assert.Less(t, time.Since(start), 2*time.Second)
	}
}

func TestArgvEscapesAndIncoming(t *testing.T) {
	a, err := arch.Lookup("x86_64")
	require.NoError(t, err)
	if _, _, err := a.Firmware(); err != nil {
		t.Skipf("needs x86_64 UEFI firmware: %v", err)
	}
	c := Config{Name: "t", Arch: a, MemoryMB: 1024, CPUs: 2, Accel: AccelTCG,
		Drives:        []Drive{{ID: "cidata", Path: "/a,b/s.iso", Format: "raw", ReadOnly: true}},
		GuestForwards: []string{GuestForward("10.0.2.100", 9000, ShellQuote("/cache,x/$(rm -rf ~)/bridge")+" bridge 127.0.0.1:1")},
		Incoming:      "/st ate/it's.state"}
	args, err := c.Argv("/d,x/overlay.qcow2", "/d/vars.fd", "/d,x/qmp.sock", map[int]int{22: 2222})
	require.NoError(t, err)
	s := strings.Join(args, " ")
	assert.Contains(t, s, "file=/d,,x/overlay.qcow2", "a comma in a path is doubled in QEMU options")
	assert.Contains(t, s, "file=/a,,b/s.iso")
	assert.Contains(t, s, "unix:/d,,x/qmp.sock,server=on")
	assert.Contains(t, s, `guestfwd=tcp:10.0.2.100:9000-cmd:'/cache,,x/$(rm -rf ~)/bridge' bridge 127.0.0.1:1`,
		"a guestfwd command: its path shell-quoted (QEMU runs it with sh -c), its commas doubled")
	assert.Equal(t, []string{"-S", "-incoming", `exec:cat '/st ate/it'\''s.state'`}, args[len(args)-3:], "a restore starts paused and loads the state through sh, quoted")
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "with space", "it's", "$(reboot)", "a'b'c", ""} {
		out, err := exec.Command("sh", "-c", "printf %s "+ShellQuote(s)).Output()
		require.NoError(t, err)
		assert.Equal(t, s, string(out))
	}
}

// renice sets every thread's nice value, and a process that is gone is an error, not a panic.
func TestUnitRenice(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.NoError(t, renice(cmd.Process.Pid, 7))
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	require.NoError(t, err)
	f := strings.Fields(string(stat)[strings.LastIndex(string(stat), ")")+2:])
	assert.Equal(t, "7", f[16], "field 19 of /proc/PID/stat is the nice value")

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	assert.Error(t, renice(cmd.Process.Pid, 7))
}

// Under TCG a VM's memory on the host is its guest's, the code cache and QEMU's own.
func TestUnitHostMemory(t *testing.T) {
	assert.Equal(t, 2048+TCGCodeBufferMB+processOverheadMB, HostMemoryMB(Config{MemoryMB: 2048, Accel: AccelTCG}))
	assert.Equal(t, 2048+processOverheadMB, HostMemoryMB(Config{MemoryMB: 2048, Accel: AccelKVM}))
}

// TestUnitFailedStatus: only a normal exit with a non-zero status is QEMU failing by itself; a
// signal (Ctrl-C, a kill) or a clean exit is not.
func TestUnitFailedStatus(t *testing.T) {
	exit := func(script string) error { return exec.Command("sh", "-c", script).Run() }
	assert.True(t, failedStatus(exit("exit 1")), "exit 1")
	assert.False(t, failedStatus(exit("exit 0")), "exit 0")
	assert.False(t, failedStatus(exit("kill -INT $$")), "ended by SIGINT")
	assert.False(t, failedStatus(exit("kill -KILL $$")), "ended by SIGKILL")
	assert.False(t, failedStatus(errors.New("not started")), "not an exit error")
}
