package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// Accelerator names.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

var (
	kvmOnce   sync.Once
	kvmOK     bool
	kvmReason string
)

// KVMUsable reports whether KVM really runs guest code for a, and why not. /dev/kvm can exist
// and QEMU can accept -accel kvm while the guest makes no progress (nested virtualisation
// without VMX), so this boots a few bytes of guest code that ask QEMU to exit: only a guest
// that ran them proves KVM works. The answer is cached for the process.
func KVMUsable(a arch.Arch) (bool, string) {
	if !a.Native() {
		return false, fmt.Sprintf("KVM cannot run %s guests on this host", a.Name)
	}
	kvmOnce.Do(func() { kvmOK, kvmReason = probeKVM(a) })
	return kvmOK, kvmReason
}

// Scratch makes a private temporary folder for the probe and returns what removes it. The
// harness sets it to its own scratch folders, which its Ctrl-C and SIGTERM handler removes too
// (a signal during the probe left this folder behind, found by the signal self-test). The
// default is like a VM's private folder: locked while in use, so a run killed mid-probe leaves
// a folder the next run removes.
var Scratch = func(name string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "azl-vmtest-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	l, ok, err := cache.TryLock(filepath.Join(dir, "owner.lock"))
	return dir, func() {
		os.RemoveAll(dir)
		if err == nil && ok {
			l.Unlock()
		}
	}, nil
}

func probeKVM(a arch.Arch) (bool, string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("/dev/kvm: %v", err)
	}
	f.Close()
	dir, done, err := Scratch("kvmprobe")
	if err != nil {
		return false, err.Error()
	}
	defer done()
	var args []string
	var wantExit int
	bios := filepath.Join(dir, "probe.bin")
	switch a.Name {
	case "x86_64":
		// 64 KiB firmware whose reset vector does: mov al,1; out 0xf4,al; hlt; jmp $.
		// isa-debug-exit turns the write into QEMU exit status (1<<1)|1 = 3.
		img := make([]byte, 64<<10)
		copy(img[len(img)-16:], []byte{0xb0, 0x01, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe})
		if err := os.WriteFile(bios, img, 0o644); err != nil {
			return false, err.Error()
		}
		args = []string{"-machine", a.Machine, "-cpu", "host", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}
		wantExit = 3
	case "aarch64":
		// PSCI SYSTEM_OFF through hvc: movz w0,#8; movk w0,#0x8400,lsl 16; hvc #0; b .
		code := []byte{0x00, 0x01, 0x80, 0x52, 0x00, 0x80, 0xb0, 0x72, 0x02, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x00, 0x14}
		if err := os.WriteFile(bios, code, 0o644); err != nil {
			return false, err.Error()
		}
		args = []string{"-machine", "virt,gic-version=host", "-cpu", "host"}
		wantExit = 0
	default:
		return false, "no KVM probe for " + a.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := Command(ctx, a.QEMUBinary, append([]string{"-accel", "kvm", "-nodefaults", "-display", "none", "-m", "64", "-bios", bios}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return false, "a KVM guest made no progress in 5 s (no hardware virtualisation for this VM?)"
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return false, err.Error()
	}
	if code != wantExit {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return false, fmt.Sprintf("a KVM probe guest failed (exit %d: %s)", code, first)
	}
	// A few real-mode instructions can run where protected-mode firmware cannot (seen here:
	// "KVM internal error. Suberror: 1 ... emulation failure" inside OVMF, after which QEMU
	// sits paused for ever). So the firmware itself must reach its boot manager too.
	return probeFirmware(a, dir)
}

// probeFirmware runs the architecture's UEFI firmware under KVM (no disk) and waits for its
// boot manager's first console line.
func probeFirmware(a arch.Arch, dir string) (bool, string) {
	code, varsTemplate, err := a.Firmware()
	if err != nil {
		return false, err.Error()
	}
	vars := filepath.Join(dir, "vars.fd")
	if err := CopyFile(varsTemplate, vars); err != nil {
		return false, err.Error()
	}
	machine := a.Machine
	if a.Name == "aarch64" {
		machine += ",gic-version=host"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.QEMUBinary, "-accel", "kvm", "-cpu", "host", "-machine", machine,
		"-nodefaults", "-display", "none", "-m", "256",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OptValue(code),
		"-drive", "if=pflash,format=raw,unit=1,file="+OptValue(vars),
		"-serial", "stdio")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr := newTailBuffer(4 << 10)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, err.Error()
	}
	if err := cmd.Start(); err != nil {
		return false, err.Error()
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := make(chan bool, 1)
	go func() {
		var seen []byte
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			seen = append(seen, buf[:n]...)
			if strings.Contains(string(seen), "BdsDxe") {
				found <- true
				return
			}
			if len(seen) > 64<<10 {
				seen = seen[len(seen)-1024:]
			}
			if err != nil {
				found <- false
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ok := <-found:
			if ok {
				return true, "KVM ran a probe guest and the UEFI firmware"
			}
			return false, "the UEFI firmware under KVM stopped: " + firstLine(stderr.String())
		case <-tick.C:
			if strings.Contains(stderr.String(), "KVM internal error") {
				return false, "the UEFI firmware failed under KVM (" + firstLine(stderr.String()) + ")"
			}
		case <-ctx.Done():
			return false, "the UEFI firmware made no progress under KVM in 15 s"
		}
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return first
}

// ResolveAccel turns "auto" into kvm or tcg, with the reason for the choice.
func ResolveAccel(want string, a arch.Arch) (string, string, error) {
	switch want {
	case "", AccelAuto:
		if ok, why := KVMUsable(a); ok {
			return AccelKVM, why, nil
		} else {
			return AccelTCG, "KVM not usable: " + why, nil
		}
	case AccelKVM:
		if ok, why := KVMUsable(a); !ok {
			return "", "", fmt.Errorf("VMTEST_ACCEL=kvm but KVM is not usable: %s (use VMTEST_ACCEL=auto or tcg)", why)
		}
		return AccelKVM, "requested", nil
	case AccelTCG:
		return AccelTCG, "requested", nil
	}
	return "", "", fmt.Errorf("unknown accelerator %q: use auto, kvm or tcg", want)
}
