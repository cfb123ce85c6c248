// Package qemu starts and stops one QEMU virtual machine: its argv comes from the per-architecture
// table (harness/arch), its disk is a qcow2 overlay over the user's image, its lifetime is tied to
// the test process (Pdeathsig), and it is controlled over QMP.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/qmp"
)

// Drive is an extra disk attached at start.
type Drive struct {
	ID       string
	Path     string
	Format   string
	ReadOnly bool
}

// Forward is a host TCP port (on 127.0.0.1) forwarded to a guest port.
type Forward struct {
	Host, Guest int
}

// Config describes one VM.
type Config struct {
	Name     string
	Arch     arch.Arch
	Image    ImageInfo // base image (never written)
	Dir      string    // private 0700 folder: overlay, firmware vars, QMP socket
	MemoryMB int
	CPUs     int
	Accel    string // kvm or tcg (resolved)
	CPUModel string // -cpu under TCG; "" = the architecture's default
	Drives   []Drive
	// Forwards are extra host ports; SSH (guest 22) is always forwarded.
	Forwards []Forward
	// NetRestricted isolates the guest from every network but the host forwards (user-net
	// restrict=on).
	NetRestricted bool
	// GuestForwards are user-net guestfwd rules (see GuestForward).
	GuestForwards []string
	// HotplugSlots is the number of empty PCIe root ports for hot-plugged devices.
	HotplugSlots int
	// TPMSocket is a software TPM's control socket (swtpm, see harness/tpm): the guest gets a
	// TPM 2.0 through the architecture's TPM device. "" = no TPM.
	TPMSocket string
	// SecureBoot boots the architecture's Secure Boot firmware with Microsoft's keys enrolled
	// (see arch.Arch.SecureBootFirmware), with SMM where that firmware needs it.
	SecureBoot bool
	// Console receives the guest's serial console.
	Console   io.Writer
	ExtraArgs []string

	// Overlay is where the qcow2 overlay over Image is created; "" = Dir/overlay.qcow2.
	Overlay string
	// Vars is the firmware variables file copied for this VM; "" = the architecture's
	// template.
	Vars string
	// Incoming is a saved state (see Instance.Save) to load instead of booting: QEMU starts
	// paused with -incoming and AwaitIncoming resumes it. Image must then be the disk saved
	// with the state, and the device set must be the one the state was saved with.
	Incoming string
}

// Instance is a running VM.
type Instance struct {
	Argv    []string
	SSHPort int
	Ports   map[int]int // guest port -> host port
	QMP     *qmp.Monitor
	Overlay string

	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	stderr  *tailBuffer
	stopped bool
	mu      sync.Mutex
}

// Argv builds QEMU's command line (without the binary).
func (c *Config) Argv(overlay, vars, qmpSock string, ports map[int]int) ([]string, error) {
	code, _, err := c.firmware()
	if err != nil {
		return nil, err
	}
	machine := c.Arch.Machine
	if c.SecureBoot && c.Arch.SecureBootSMM {
		machine += ",smm=on"
	}
	a := []string{
		"-name", "azl-vmtest-" + c.Name,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", machine,
		"-smp", strconv.Itoa(c.CPUs), "-m", strconv.Itoa(c.MemoryMB),
	}
	if c.SecureBoot && c.Arch.SecureBootSMM {
		// Only code running in SMM may write the variable store: what keeps the enrolled
		// keys and the SecureBoot variable out of the OS's reach.
		a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	switch c.Accel {
	case AccelKVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	default:
		cpu := c.Arch.TCGCPU
		if c.CPUModel != "" {
			cpu = c.CPUModel
		}
		a = append(a, "-accel", fmt.Sprintf("tcg,thread=multi,tb-size=%d", TCGCodeBufferMB), "-cpu", cpu)
	}
	a = append(a,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OptValue(code),
		"-drive", "if=pflash,format=raw,unit=1,file="+OptValue(vars),
		// The overlay is thrown away with the VM, so host flushes buy nothing.
		"-drive", "if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap,file="+OptValue(overlay),
		"-device", c.Arch.DiskDevice+",drive=disk0,bootindex=0",
	)
	for _, d := range c.Drives {
		opt := fmt.Sprintf("if=none,id=%s,format=%s,file=%s", d.ID, d.Format, OptValue(d.Path))
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		a = append(a, "-drive", opt, "-device", c.Arch.DiskDevice+",drive="+d.ID)
	}
	netdev := "user,id=net0"
	if c.NetRestricted {
		netdev += ",restrict=on"
	}
	for _, g := range slices.Sorted(maps.Keys(ports)) {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", ports[g], g)
	}
	for _, f := range c.GuestForwards {
		netdev += ",guestfwd=" + f
	}
	for i := 0; i < c.HotplugSlots; i++ {
		a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=%s%d,chassis=%d", HotplugPortPrefix, i, 10+i))
	}
	if c.TPMSocket != "" {
		a = append(a, "-chardev", "socket,id=chrtpm,path="+OptValue(c.TPMSocket),
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", c.Arch.TPMDevice+",tpmdev=tpm0")
	}
	a = append(a,
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci",
		// A guest that panics tells QEMU (pvpanic), which pauses it and says GUEST_PANICKED on
		// QMP: a panic with no console output is caught at once, not by the timeout.
		"-device", "pvpanic-pci", "-action", "panic=pause",
		"-qmp", "unix:"+OptValue(qmpSock)+",server=on,wait=off",
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
	)
	if c.Incoming != "" {
		// -S: stay paused after loading, so the caller can check the state before it runs.
		a = append(a, "-S", "-incoming", "exec:cat "+ShellQuote(c.Incoming))
	}
	return append(a, c.ExtraArgs...), nil
}

// firmware is the UEFI code and vars template c boots with.
func (c *Config) firmware() (code, vars string, err error) {
	if c.SecureBoot {
		return c.Arch.SecureBootFirmware()
	}
	return c.Arch.Firmware()
}

// OptValue escapes a value for a QEMU option string (key=value,...): a comma is doubled.
func OptValue(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// ShellQuote quotes s for /bin/sh (QEMU runs exec: migration URIs through it).
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Start creates the overlay and firmware vars, starts QEMU and connects QMP. The process gets
// SIGKILL when the test process dies, whatever the cause.
func Start(ctx context.Context, c Config) (*Instance, error) {
	if _, err := exec.LookPath(c.Arch.QEMUBinary); err != nil {
		return nil, fmt.Errorf("%s not found: run scripts/host-setup.sh as root", c.Arch.QEMUBinary)
	}
	_, varsTemplate, err := c.firmware()
	if err != nil {
		return nil, err
	}
	if c.Vars != "" {
		varsTemplate = c.Vars
	}
	overlay := c.Overlay
	if overlay == "" {
		overlay = filepath.Join(c.Dir, "overlay.qcow2")
	}
	if err := CreateOverlay(ctx, c.Image, overlay); err != nil {
		return nil, err
	}
	vars := filepath.Join(c.Dir, "efivars.fd")
	if err := CopyFile(varsTemplate, vars); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		ports := map[int]int{22: 0}
		for _, f := range c.Forwards {
			ports[f.Guest] = f.Host
		}
		for g, h := range ports {
			if h == 0 {
				if ports[g], err = freePort(); err != nil {
					return nil, err
				}
			}
		}
		inst, err := start(ctx, c, overlay, vars, ports)
		if err == nil {
			return inst, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "host forwarding") {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, c Config, overlay, vars string, ports map[int]int) (*Instance, error) {
	qmpSock := filepath.Join(c.Dir, "qmp.sock")
	_ = os.Remove(qmpSock)
	argv, err := c.Argv(overlay, vars, qmpSock, ports)
	if err != nil {
		return nil, err
	}
	inst := &Instance{Argv: append([]string{c.Arch.QEMUBinary}, argv...), SSHPort: ports[22], Ports: ports,
		Overlay: overlay, exited: make(chan struct{}), stderr: newTailBuffer(8 << 10)}
	cmd := exec.Command(c.Arch.QEMUBinary, argv...)
	cmd.Dir = c.Dir
	cmd.Stdin = nil
	if c.Console != nil {
		cmd.Stdout = c.Console
	}
	cmd.Stderr = inst.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL, // dies with the test process, even on SIGKILL
		Setpgid:   true,            // a terminal's Ctrl-C reaches the test, which stops QEMU itself
	}
	inst.cmd = cmd
	// Pdeathsig fires when the thread that forked QEMU exits, so fork from a locked thread that
	// lives exactly as long as QEMU.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		err := cmd.Wait()
		inst.mu.Lock()
		inst.exitErr = err
		inst.mu.Unlock()
		close(inst.exited)
		// The thread is left locked on purpose: it exits with this goroutine.
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Arch.QEMUBinary, err)
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	qctx, cancel2 := contextUntil(qctx, inst.exited)
	defer cancel2()
	mon, err := qmp.Connect(qctx, qmpSock)
	if err != nil {
		inst.Kill()
		<-inst.exited
		return nil, fmt.Errorf("QEMU did not come up: %v", inst.ExitError()) // ExitError carries QEMU's stderr
	}
	inst.QMP = mon
	return inst, nil
}

// contextUntil is ctx, also cancelled when done closes.
func contextUntil(ctx context.Context, done <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Exited is closed when QEMU has exited.
func (i *Instance) Exited() <-chan struct{} { return i.exited }

// ExitError describes how QEMU ended (nil while running), with its stderr.
func (i *Instance) ExitError() error {
	select {
	case <-i.exited:
	default:
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	msg := "QEMU exited"
	if i.exitErr != nil {
		msg += ": " + i.exitErr.Error()
	}
	if i.stopped {
		msg += " (stopped by the harness)"
	}
	if s := strings.TrimSpace(i.stderr.String()); s != "" {
		msg += "\n" + s
	}
	return errors.New(msg)
}

// FailedByItself says whether QEMU has exited with an error status of its own: not stopped by
// the harness, not ended by a signal (a Ctrl-C, a kill, its parent's death), not a clean exit
// (QEMU quits with 0 on SIGINT or SIGTERM). Only such an exit while loading an incoming state
// says the state could not be loaded.
func (i *Instance) FailedByItself() bool {
	select {
	case <-i.exited:
	default:
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.stopped && failedStatus(i.exitErr)
}

// failedStatus says whether cmd.Wait's error is a normal exit with a non-zero status.
func failedStatus(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Exited() && ws.ExitStatus() != 0
}

// Fault is a failure QEMU reported without exiting (it then keeps the guest paused for ever):
// a guest panic (GUEST_PANICKED over QMP, through pvpanic) or "KVM internal error" on its
// stderr. nil if none.
func (i *Instance) Fault() error {
	if i.QMP != nil {
		select {
		case <-i.QMP.Panicked():
			return errors.New("the guest kernel panicked (QEMU reported GUEST_PANICKED through pvpanic; the guest is paused): see the console log and the guest's kdump, if any")
		default:
		}
	}
	if s := i.stderr.String(); strings.Contains(s, "KVM internal error") {
		return fmt.Errorf("QEMU stopped the guest: %s (use VMTEST_ACCEL=tcg)", firstLine(s[strings.Index(s, "KVM internal error"):]))
	}
	return nil
}

// Pid is QEMU's process ID.
func (i *Instance) Pid() int { return i.cmd.Process.Pid }

// TCGCodeBufferMB is the translated-code cache QEMU keeps per VM under TCG (-accel tcg,tb-size),
// a quarter of QEMU's default for system emulation on a 64-bit host (1 GiB). A guest fills it
// (a real boot of the stand-in writes 1 GiB of translations), and QEMU empties it only when it
// is full. Until then, a translation outlives the guest's use of its page: a write to a page
// that still has translations takes TCG's slow path, which looks them up on every store (QEMU
// 7.2: page_collection_lock, a quarter of QEMU's time in a profile). A reboot suffers most:
// firmware, GRUB and the kernel load into memory where the last run's programs ran. Measured
// here (x86-64, TCG, 1 vCPU), a restored guest that made three filesystems then rebooted took
// 17-18 s in the firmware, 8.5-9 s in GRUB and 103 QEMU CPU-seconds from the reboot to the
// login prompt with 1 GiB; 5.3 s, 1.6 s and 72 with 256 MiB (128 MiB: 3.2 s, 0.7 s, 72; 64 MiB
// retranslates too often: 88). A real boot to ready took 85 CPU-seconds with 1 GiB, 78 with
// 256 MiB; the package suite, which reruns dnf and apt and so reuses translations most, 261
// and 268 with 1 GiB, 264 and 278 with 256 MiB (within the host's noise). Under KVM there is
// no such cache.
const TCGCodeBufferMB = 256

// processOverheadMB is QEMU's own memory besides the guest's and the code cache.
const processOverheadMB = 128

// HostMemoryMB is the host memory a VM of c takes at most: the guest's memory (QEMU ends up
// holding all of it: firmware and restores touch every page), the code cache under TCG, and
// QEMU's own.
func HostMemoryMB(c Config) int {
	mb := c.MemoryMB + processOverheadMB
	if c.Accel != AccelKVM {
		mb += TCGCodeBufferMB
	}
	return mb
}

// SetNice sets the scheduling priority (the nice value) of every QEMU thread: Linux keeps one
// per thread, and threads QEMU starts later inherit it from the thread that starts them.
// Raising it needs no privilege; lowering it needs CAP_SYS_NICE (root) or RLIMIT_NICE.
func (i *Instance) SetNice(n int) error { return renice(i.Pid(), n) }

// renice sets the nice value of every thread of process pid.
func renice(pid, n int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("setting QEMU's nice value to %d: %w", n, err)
		}
	}
	return nil
}

// CPUTime is the host CPU time (user and system) QEMU used over its life, known once it has
// exited; false before.
func (i *Instance) CPUTime() (time.Duration, bool) {
	select {
	case <-i.exited:
	default:
		return 0, false
	}
	if i.cmd.ProcessState == nil {
		return 0, false
	}
	return i.cmd.ProcessState.UserTime() + i.cmd.ProcessState.SystemTime(), true
}

// markStopped records that the harness ends QEMU, unless QEMU already exited by itself (then
// its exit is reported as its own).
func (i *Instance) markStopped() {
	select {
	case <-i.exited:
		return
	default:
	}
	i.mu.Lock()
	i.stopped = true
	i.mu.Unlock()
}

// Kill ends QEMU at once.
func (i *Instance) Kill() {
	i.markStopped()
	if i.cmd.Process != nil {
		_ = i.cmd.Process.Kill()
	}
}

// Stop asks QEMU to quit over QMP and kills it if it has not exited within grace.
func (i *Instance) Stop(grace time.Duration) {
	i.markStopped()
	select {
	case <-i.exited:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		_ = i.QMP.Run(ctx, "quit", nil, nil)
		select {
		case <-i.exited:
		case <-ctx.Done():
			i.Kill()
			<-i.exited
		}
		cancel()
	}
	i.QMP.Close()
}

// HotplugPortPrefix names the empty PCIe root ports: hot-plugged devices go on
// "<prefix><n>".
const HotplugPortPrefix = "hotplug"

// GuestForward is a guestfwd rule: a guest connection to ip:port runs cmd (a shell line: QEMU
// runs it with /bin/sh -c; quote paths with ShellQuote) on the host with the connection as its
// stdin/stdout. Commas are doubled for QEMU's option parser.
func GuestForward(ip string, port int, cmd string) string {
	return fmt.Sprintf("tcp:%s:%d-cmd:%s", ip, port, OptValue(cmd))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CopyFile copies src to a new private (0600) file dst.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tailBuffer keeps the last n bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = t.buf[len(t.buf)-t.n:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
