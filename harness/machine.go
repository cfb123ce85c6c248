// Package harness is the API suites use: boot a VM (or share one across a package's read-only
// tests), wait until it is really ready, and run commands on it over SSH.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bramvdbogaerde/go-scp"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/console"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/tpm"
)

// Machine is a booted guest reachable over SSH.
type Machine struct {
	cfg  Config
	name string
	dir  string // private, 0700: overlay, keys, QMP socket, console log
	// faultReported: Dead already waited for the console after a fault QEMU reported.
	faultReported bool
	closing       sync.WaitGroup // held while Close runs
	inst          *qemu.Instance
	accel         string // the accelerator QEMU runs it with: kvm or tcg
	tpm           *tpm.Emulator
	console       *console.Recorder
	profile       *profile.Profile
	sshCfg        ssh.Config
	userKey       *cloudinit.KeyPair
	hostKey       *cloudinit.KeyPair
	userData      []byte
	started       time.Time
	logf          func(string, ...any)
	owner         testing.TB // the test Boot started it for (nil: a shared or spawned machine)

	// Stages are the boot's measured stage times (from QEMU start).
	Stages BootStages

	mu        sync.Mutex
	probe     bool                 // vmtest-probe installed
	slots     [hotplugSlots]string // hot-plugged device ID per PCIe root port
	client    *ssh.Client
	root      rootShell // the kept root shell on client (its own lock)
	bootID    string
	dmesgSeen int
	avcSeen   map[string]bool  // SELinux denial records already judged (avc.Record.Key)
	avcExpect []*regexp.Regexp // denials the running test declared (ExpectDenial)
	closed    bool

	slot         *slots.Grant
	wakeBy       time.Time    // how long wake may wait for a slot (zero: as long as it takes)
	bootSlot     *slots.Grant // held while the guest boots
	restoredFrom string       // saved state key, "" for a booted machine
	recheck      func() error // a restore: is its saved state still current, now that it holds a slot?
	niced        bool         // QEMU runs at RestoredNice
	instanceID   string       // a restored machine's marker

	// The azure target's VM (its resource group is deleted by Close).
	cloud *azure.VM
	// The start under way (a QEMU boot or restore, an Azure VM's provisioning), which Close
	// cancels and waits for: until it returns, what it starts or writes (swtpm, a QEMU not yet
	// answering QMP, the seed, the overlay, an Azure VM being created) is known to it alone,
	// and removing the folder beside it would race with it.
	cancelStart context.CancelFunc
	starting    sync.WaitGroup
}

var nameRe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func sanitize(name string) string {
	s := nameRe.ReplaceAllString(name, "_")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// inspectImage checks the image (qemu.Inspect) and that it is built for the configured
// architecture (qemu.CheckArch), with their temporary files in a scratch folder.
func inspectImage(ctx context.Context, cfg Config) (qemu.ImageInfo, error) {
	dir, done, err := scratchDir("image-check")
	if err != nil {
		return qemu.ImageInfo{}, err
	}
	defer done()
	info, err := qemu.Inspect(ctx, cfg.Image, dir)
	if err != nil {
		return info, err
	}
	return info, qemu.CheckArch(ctx, info, cfg.Arch.Name, dir)
}

// start gives a ready machine: restored from a saved booted state when the configuration
// allows one (see restore.go), else booted. On error the returned Machine (if not nil) still
// owns a QEMU process and must be closed after artifacts are taken.
func start(ctx context.Context, cfg Config, name string, logf func(string, ...any)) (*Machine, error) {
	switch cfg.Target.Kind {
	case TargetSSH:
		return connect(ctx, cfg, name, logf)
	case TargetAzure:
		return provision(ctx, cfg, name, logf)
	}
	info, err := inspectImage(ctx, cfg)
	if err != nil {
		return nil, err
	}
	accel, why, err := qemu.ResolveAccel(cfg.Accel, cfg.Arch)
	if err != nil {
		return nil, err
	}
	cfg.settle(accel)
	var prof *profile.Profile
	if cfg.Profile != "" {
		if prof, err = profile.Load(cfg.Profile); err != nil {
			return nil, fmt.Errorf("VMTEST_PROFILE: %w", err)
		}
	}
	logf("vm %s: %s image %s (%s), accelerator %s (%s), %d CPUs, %d MiB", name, cfg.Arch.Name, info.Path, info.Format, accel, why, cfg.CPUs, cfg.MemoryMB)
	l := launch{cfg: cfg, info: info, accel: accel, prof: prof}
	switch {
	case cfg.restorable():
		return l.restore(ctx, name, logf)
	case cfg.donatable():
		return l.bootAndSave(ctx, name, logf)
	}
	return l.boot(ctx, name, logf, "")
}

// launch is what every way of starting a machine shares: the resolved configuration.
type launch struct {
	cfg   Config
	info  qemu.ImageInfo
	accel string
	prof  *profile.Profile
}

// newMachine makes the machine's private folder and begins its start: the caller starts it
// with the context returned, which Close cancels, and calls m.starting.Done when the start
// returns (before removeIfNeverStarted, which closes it).
func (l launch) newMachine(ctx context.Context, name string, logf func(string, ...any)) (*Machine, context.Context, error) {
	dir, err := newPrivateDir(name)
	if err != nil {
		return nil, nil, err
	}
	m := &Machine{cfg: l.cfg, name: name, dir: dir, profile: l.prof, logf: logf}
	ctx = m.beginStart(ctx)
	register(m) // from now on a signal stops it and removes its folder
	return m, ctx, nil
}

// beginStart makes the context of m's start, which Close cancels before it waits for the
// start to return (m.starting, which the caller ends). The context lives as long as m: what
// the start leaves running on it ends with Close.
func (m *Machine) beginStart(ctx context.Context) context.Context {
	ctx, m.cancelStart = context.WithCancel(ctx)
	m.starting.Add(1)
	return ctx
}

// removeIfNeverStarted removes the private folder of a machine whose QEMU never started (a
// started one is stopped and cleaned by Close).
func (m *Machine) removeIfNeverStarted() {
	if m.inst == nil {
		m.Close()
	}
}

// boot starts a machine from its firmware and waits until it is ready. overlay, if not "",
// is where its disk overlay goes (a saved state being built).
func (l launch) boot(ctx context.Context, name string, logf func(string, ...any), overlay string) (*Machine, error) {
	cfg := l.cfg
	m, ctx, err := l.newMachine(ctx, name, logf)
	if err != nil {
		return nil, err
	}
	defer m.removeIfNeverStarted()
	defer m.starting.Done()
	if m.userKey, err = cloudinit.NewKeyPair(cfg.User + "@azl-vmtest"); err != nil {
		return nil, err
	}
	if m.hostKey, err = cloudinit.NewKeyPair("azl-vmtest-host"); err != nil {
		return nil, err
	}
	seed := &cloudinit.Seed{
		InstanceID: fmt.Sprintf("azl-vmtest-%d", time.Now().UnixNano()),
		Hostname:   hostname(name), User: cfg.User, UserKey: m.userKey, HostKey: m.hostKey,
		WriteFiles: cfg.WriteFiles, BootCmd: cfg.BootCmd, RunCmd: cfg.RunCmd, Extra: cfg.Extra,
		NetworkConfig: cfg.NetworkConfig, Raw: cfg.ForeignUserData,
	}
	if m.userData, err = seed.UserData(); err != nil {
		return nil, err
	}
	seedPath := filepath.Join(m.dir, "seed.iso")
	if err := seed.WriteISO(seedPath); err != nil {
		return nil, err
	}
	qc, err := l.qemuConfig(ctx, m, seedPath)
	if err != nil {
		return nil, err
	}
	qc.Overlay = overlay
	if err := m.launch(ctx, qc); err != nil {
		return nil, err
	}
	if cfg.ForeignUserData != nil {
		m.bootSlot.Release() // not logged in to: up once QEMU runs
		m.log("vm %s: started with foreign user-data; SSH at 127.0.0.1:%d", name, m.HostPort(22))
		// A real boot all the same (its target waits for it): counted with the time to QEMU's start.
		recordStart(cfg, "boot", name, m.Stages.QEMU)
		return m, nil
	}
	bctx, cancel := m.bootBound(ctx, cfg.BootTimeout)
	defer cancel()
	err = boundCause(bctx, m.waitReady(bctx))
	m.bootSlot.Release()
	if err != nil {
		return m, err
	}
	if err := m.detectProfile(ctx); err != nil {
		return m, err
	}
	recordStart(cfg, "boot", name, m.Stages.Ready)
	return m, nil
}

// hostname is the guest's host name for a machine called name.
func hostname(name string) string {
	h := "azl-vmtest-" + strings.ToLower(sanitize(name))
	h = strings.Trim(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(h, "-"), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	return h
}

// qemuConfig is the QEMU configuration of m with the seed at seedPath; it also opens the
// console recorder. The device set here is what a saved state records (stateInputs).
func (l launch) qemuConfig(ctx context.Context, m *Machine, seedPath string) (qemu.Config, error) {
	cfg := l.cfg
	var err error
	if m.console, err = console.NewRecorder(filepath.Join(m.dir, "console.log")); err != nil {
		return qemu.Config{}, err
	}
	var fwd []qemu.Forward
	for g, h := range cfg.Forwards {
		fwd = append(fwd, qemu.Forward{Guest: g, Host: h})
	}
	var extra []string
	if len(cfg.HostServices) > 0 {
		host, err := arch.Host()
		if err != nil {
			return qemu.Config{}, err
		}
		bridge, err := buildProbe(ctx, host)
		if err != nil {
			return qemu.Config{}, err
		}
		for port, addr := range cfg.HostServices {
			extra = append(extra, qemu.GuestForward(HostServiceIP, port, qemu.ShellQuote(bridge)+" bridge "+qemu.ShellQuote(addr)))
		}
	}
	return qemu.Config{
		GuestForwards: extra,
		HotplugSlots:  hotplugSlots,
		Name:          sanitize(m.name), Arch: cfg.Arch, Image: l.info, Dir: m.dir,
		MemoryMB: cfg.MemoryMB, CPUs: cfg.CPUs, Accel: l.accel, CPUModel: cfg.CPUModel,
		Drives:        []qemu.Drive{{ID: "cidata", Path: seedPath, Format: "raw", ReadOnly: true}},
		Forwards:      fwd,
		NetRestricted: !cfg.NetOpen,
		SecureBoot:    cfg.SecureBoot,
		Console:       m.console,
	}, nil
}

// launch takes a VM slot on the host (see harness/slots), starts QEMU for m and registers it
// for signal handling.
func (m *Machine) launch(ctx context.Context, qc qemu.Config) error {
	var err error
	logf := func(f string, a ...any) { m.log("vm "+m.name+": "+f, a...) }
	m.accel = qc.Accel
	if m.slot, err = slots.Acquire(ctx, qemu.HostMemoryMB(qc), logf); err != nil {
		m.console.Close()
		return err
	}
	if m.recheck != nil {
		// A restore may have waited minutes for its slot: the state it opened before may have
		// been found unusable (by another run) and removed or rebuilt meanwhile.
		if err := m.recheck(); err != nil {
			m.console.Close()
			m.slot.Release()
			return err
		}
	}
	if qc.Incoming == "" { // a boot: one of the host's few boot slots until ready
		if m.bootSlot, err = slots.AcquireBoot(ctx, qc.CPUs, logf); err != nil {
			m.console.Close()
			m.slot.Release()
			return err
		}
	}
	if m.cfg.TPM {
		if m.tpm, err = tpm.Start(m.dir); err != nil {
			m.console.Close()
			m.bootSlot.Release()
			m.slot.Release()
			return err
		}
		qc.TPMSocket = m.tpm.Socket
	}
	m.started = time.Now()
	m.inst, err = qemu.Start(ctx, qc)
	if err != nil {
		if m.tpm != nil {
			if why := m.tpm.Exited(); why != nil {
				err = fmt.Errorf("%w (the VM's TPM: %v)", err, why)
			}
			m.tpm.Close()
		}
		m.console.Close()
		m.bootSlot.Release()
		m.slot.Release()
		return err
	}
	m.Stages.QEMU = time.Since(m.started)
	m.sshCfg = ssh.Config{Addr: fmt.Sprintf("127.0.0.1:%d", m.inst.SSHPort), User: m.cfg.User,
		Signer: m.userKey.Signer, HostKey: m.hostKey.Signer.PublicKey()}
	m.log("vm %s: +%.1fs QEMU up (pid %d), SSH on 127.0.0.1:%d, console %s", m.name, m.Stages.QEMU.Seconds(), m.inst.Pid(), m.inst.SSHPort, filepath.Join(m.dir, "console.log"))
	return nil
}

// RestoredNice is the nice value of a restored VM's QEMU. A boot holds a boot slot, runs on a
// deadline and other tests wait for it (a saved state, a package's only VM), while a restored
// VM runs a test's commands one at a time with minutes to spare: with the CPUs shared, a boot
// gets about three times a restored VM's share (CFS weights 1024 and 335).
const RestoredNice = 5

// yieldToBoots lowers a restored VM's CPU priority to RestoredNice (best effort: the VM runs
// either way).
func (m *Machine) yieldToBoots() {
	if m.setNice(RestoredNice) {
		m.niced = true
	}
}

func (m *Machine) setNice(n int) bool {
	if m.inst == nil {
		return false
	}
	if err := m.inst.SetNice(n); err != nil {
		m.log("vm %s: %v (it runs at its present priority)", m.name, err)
		return false
	}
	return true
}

// detectProfile reads the guest's os-release unless a profile was given.
func (m *Machine) detectProfile(ctx context.Context) error {
	if m.profile == nil {
		osr, err := m.Run(ctx, "cat /etc/os-release")
		if err != nil {
			return err
		}
		if m.profile, err = profile.Detect(string(osr.Stdout)); err != nil {
			return err
		}
	}
	m.log("vm %s: profile %s (%s)", m.name, m.profile.Name, m.profile.Source)
	return nil
}

// settle fills in what depends on the accelerator and was not set: the boot timeout and the
// guest's CPU count.
func (c *Config) settle(accel string) {
	if c.BootTimeout == 0 {
		c.BootTimeout = defaultBootTimeout(accel, c.Arch)
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs(accel)
	}
}

// DefaultCPUs is a guest's CPU count when neither VMTEST_CPUS nor WithCPUs says: two under
// KVM, one under TCG. Under TCG every vCPU is a host thread emulating the guest, and a test
// run keeps several VMs on the host at once: a second vCPU then buys no speed, while the
// guest's cross-CPU interrupts and spinning on a lock whose holder's thread is not running
// cost host CPU. Measured here (2 cores, an aarch64 image build beside): the logging suite
// took 337 CPU-seconds (37 of them system) with two vCPUs, 245 (7) with one, and its wall
// time fell from 306 to 254 s.
func DefaultCPUs(accel string) int {
	if accel == qemu.AccelKVM {
		return 2
	}
	return 1
}

func defaultBootTimeout(accel string, a arch.Arch) time.Duration {
	switch {
	case accel == qemu.AccelKVM:
		return 3 * time.Minute
	case a.Name == "aarch64":
		return 10 * time.Minute
	default:
		return 6 * time.Minute
	}
}

// Close stops QEMU and removes the private folder. Safe to call more than once and from
// several goroutines: a second call waits until the first is done (a test failing because a
// signal handler is stopping its VM must not let the process exit before the folder is gone).
func (m *Machine) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.closing.Wait()
		return
	}
	m.closed = true
	m.closing.Add(1)
	defer m.closing.Done()
	// Registered until its folder is gone: a signal handler that stops every VM must wait for
	// this one too before the process exits (stopAll).
	defer unregister(m)
	c := m.client
	m.client = nil
	m.mu.Unlock()
	m.closeRootShell()
	if m.cancelStart != nil {
		m.cancelStart()
		m.starting.Wait() // then the start's QEMU, swtpm and files are m's (or gone)
	}
	if c != nil {
		c.Close()
	}
	m.deleteCloud()
	if m.inst != nil {
		m.inst.Stop(5 * time.Second)
		if cpu, ok := m.inst.CPUTime(); ok {
			recordUsage(m.cfg, packageName()+"/"+m.name, cpu, time.Since(m.started))
		}
	}
	m.tpm.Close() // after QEMU, which it serves
	m.bootSlot.Release()
	m.slot.Release()
	if m.console != nil {
		m.console.Close()
	}
	removePrivateDir(m.dir)
}

// Restored reports whether the machine was started from a saved booted state (and which)
// rather than booted.
func (m *Machine) Restored() (key string, ok bool) { return m.restoredFrom, m.restoredFrom != "" }

// InstanceID is the machine's own marker, also in the guest's /run/azl-vmtest/instance-id, for
// a machine restored from (or saved into) a saved state; "" for a plain boot.
func (m *Machine) InstanceID() string { return m.instanceID }

// Profile is what this guest's OS release promises.
func (m *Machine) Profile() *profile.Profile { return m.profile }

// Accelerator is how QEMU runs the guest: "kvm" or "tcg".
func (m *Machine) Accelerator() string { return m.accel }

// Arch is the guest's architecture.
func (m *Machine) Arch() arch.Arch { return m.cfg.Arch }

// Console is the guest's serial console.
func (m *Machine) Console() *console.Recorder { return m.console }

// Instance is the QEMU process.
func (m *Machine) Instance() *qemu.Instance { return m.inst }

// HostPort is the host port (on 127.0.0.1) forwarded to guestPort, or 0.
func (m *Machine) HostPort(guestPort int) int { return m.inst.Ports[guestPort] }

// NetOpen reports whether the guest may reach the host's networks (WithNetOpen,
// VMTEST_NET=open); otherwise QEMU's user-net isolates it and gives it no default route.
func (m *Machine) NetOpen() bool { return m.cfg.NetOpen }

// UserData is the rendered user-data the guest was given.
func (m *Machine) UserData() []byte { return m.userData }

// HostKey is the SSH host key the harness injected and pins ("ecdsa-sha2-nistp256 AAAA...").
func (m *Machine) HostKey() string { return m.hostKey.PublicLine }

// UserKey is the test user's authorized public key.
func (m *Machine) UserKey() string { return m.userKey.PublicLine }

// User is the test user's name.
func (m *Machine) User() string { return m.cfg.User }

// Dead returns why the guest can no longer answer (fatal console sign or QEMU gone), or nil.
func (m *Machine) Dead() error {
	if m.console == nil { // an ssh target: nothing but SSH tells
		return nil
	}
	if err := m.console.FatalError(); err != nil {
		return err
	}
	if m.inst != nil {
		if err := m.inst.ExitError(); err != nil {
			return err
		}
		if err := m.inst.Fault(); err != nil {
			return m.faultWithConsole(err)
		}
	}
	return nil
}

// faultWithConsole adds what the console says to a fault QEMU reported (pvpanic's event can
// arrive before the panic's own lines): it waits for them up to 2 s, once.
func (m *Machine) faultWithConsole(fault error) error {
	m.mu.Lock()
	done := m.faultReported
	m.faultReported = true
	m.mu.Unlock()
	if !done {
		select {
		case <-m.console.Fatal():
		case <-time.After(2 * time.Second):
		}
	}
	if cerr := m.console.FatalError(); cerr != nil {
		return fmt.Errorf("%w\n%v", fault, cerr)
	}
	return fmt.Errorf("%w\nconsole tail:\n%s", fault, m.console.Tail(30))
}

// Heartbeat bounds: while a command runs, the guest is asked every HeartbeatEvery whether it
// still runs (QEMU's status over QMP: a paused or stopped guest fails the command at once) and
// answers (an SSH keepalive: no answer for HeartbeatSilence fails it; generous, because a
// guest starved of host CPU under TCG can be slow without being stuck).
var (
	HeartbeatEvery   = 5 * time.Second
	HeartbeatSilence = 60 * time.Second
)

// guard returns ctx, also cancelled when the guest dies or stops answering; context.Cause
// then says why.
func (m *Machine) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if err := m.wake(); err != nil {
		cancel(err)
		return ctx, func() { cancel(nil) }
	}
	go func() {
		tick := time.NewTicker(HeartbeatEvery)
		defer tick.Stop()
		answered := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.consoleFatal():
				cancel(errors.New("the guest died (console)"))
				return
			case <-m.qemuExited():
				cancel(errors.New("QEMU exited"))
				return
			case <-m.guestPanicked():
				cancel(errors.New("the guest panicked"))
				return
			case <-tick.C:
				if err := m.heartbeat(ctx, &answered); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// wake makes sure the machine has a host slot to run on before the harness asks anything of
// the guest: a shared VM left idle between tests (Shared) may have lent its slot to a VM of a
// test of its package meanwhile, and then waits, as a new VM would, while that VM runs
// (slots.Grant.Busy). At once for any other machine.
func (m *Machine) wake() error {
	ctx := context.Background()
	if !m.wakeBy.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, m.wakeBy)
		defer cancel()
	}
	return m.slot.Busy(ctx, func(f string, a ...any) { m.log("vm "+m.name+": "+f, a...) })
}

// heartbeat checks the guest runs and answers; answered is when it last answered.
func (m *Machine) heartbeat(ctx context.Context, answered *time.Time) error {
	hctx, cancel := context.WithTimeout(ctx, HeartbeatEvery)
	defer cancel()
	if m.inst != nil {
		if st, err := m.inst.QMP.QueryStatus(hctx); err == nil && !st.Running {
			return fmt.Errorf("the guest stopped running (QEMU status %q)", st.Status)
		}
	}
	c := m.sshClient()
	if c == nil || c.Alive(hctx) == nil { // no connection yet (a boot): nothing to ask
		*answered = time.Now()
		return nil
	}
	if ctx.Err() == nil && time.Since(*answered) > HeartbeatSilence {
		return fmt.Errorf("the guest stopped answering: no SSH keepalive reply for %s (QEMU still runs it: a hang, or a host too loaded to run it)", time.Since(*answered).Round(time.Second))
	}
	return nil
}

// dropClient closes the kept SSH connection, if any.
func (m *Machine) dropClient() {
	m.mu.Lock()
	c := m.client
	m.client = nil
	m.mu.Unlock()
	m.closeRootShell()
	if c != nil {
		c.Close()
	}
}

func (m *Machine) sshClient() *ssh.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// Run runs a shell command as the test user. A non-zero exit is in the Result, not an error;
// an error means the outcome is unknown (connection lost, guest died, ctx ended). Commands are
// never retried.
func (m *Machine) Run(ctx context.Context, cmd string) (ssh.Result, error) {
	if d := m.Dead(); d != nil {
		return ssh.Result{ExitCode: -1}, fmt.Errorf("%q: guest is down: %w", cmd, d)
	}
	c := m.sshClient()
	if c == nil {
		return ssh.Result{ExitCode: -1}, fmt.Errorf("%q: not connected to the guest", cmd)
	}
	gctx, cancel := m.guard(ctx)
	defer cancel()
	res, err := c.Run(gctx, GuestPATH+cmd, nil)
	if cause := context.Cause(gctx); err != nil && ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		if d := m.Dead(); d == nil {
			return res, fmt.Errorf("%q: %w", cmd, cause) // stopped, or stopped answering
		}
	}
	if err != nil && ctx.Err() == nil {
		// A lost connection is often the first sign of a dying guest: give QEMU's exit or the
		// console's panic line a moment to arrive so the error says why.
		select {
		case <-m.qemuExited():
		case <-m.consoleFatal():
		case <-m.guestPanicked():
		case <-time.After(2 * time.Second):
		}
		if d := m.Dead(); d != nil {
			return res, fmt.Errorf("%q: guest died: %w", cmd, d)
		}
	}
	return res, err
}

// RunAll runs read-only probes in one SSH session: one round trip for all of them, each
// probe's stdout, stderr and exit code kept apart (see ssh.Client.RunAll). The error is for an
// unknown outcome of the whole batch.
func (m *Machine) RunAll(ctx context.Context, cmds ...string) ([]ssh.Result, error) {
	if d := m.Dead(); d != nil {
		return nil, fmt.Errorf("probe batch: guest is down: %w", d)
	}
	c := m.sshClient()
	if c == nil {
		return nil, errors.New("probe batch: not connected to the guest")
	}
	gctx, cancel := m.guard(ctx)
	defer cancel()
	res, err := c.RunAll(gctx, GuestPATH, cmds)
	if err != nil {
		if d := m.Dead(); d != nil {
			return nil, fmt.Errorf("probe batch: guest died: %w", d)
		}
	}
	return res, err
}

// GuestPATH prefixes every command: admin tools (sysctl, ip, auditctl, sshd) live in sbin,
// which some distributions leave off an ordinary user's PATH.
const GuestPATH = `PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; `

// DefaultCommandTimeout bounds MustRun and Output.
const DefaultCommandTimeout = 5 * time.Minute

// MustRun runs cmd and fails the test unless it exits 0; it returns stdout without the
// trailing newline.
func (m *Machine) MustRun(t testing.TB, cmd string) string {
	t.Helper()
	out, code, err := m.output(t, cmd)
	if err != nil {
		t.Fatalf("guest command %q: %v", cmd, err)
	}
	if code != 0 {
		t.Fatalf("guest command %q exited %d\n%s", cmd, code, out)
	}
	return strings.TrimRight(out.stdout, "\n")
}

// Output runs cmd and returns its stdout (trailing newline trimmed) and exit code; it fails the
// test only when the outcome is unknown.
func (m *Machine) Output(t testing.TB, cmd string) (string, int) {
	t.Helper()
	out, code, err := m.output(t, cmd)
	if err != nil {
		t.Fatalf("guest command %q: %v", cmd, err)
	}
	return strings.TrimRight(out.stdout, "\n"), code
}

type cmdOutput struct{ stdout, stderr string }

func (o cmdOutput) String() string {
	return fmt.Sprintf("stdout: %s\nstderr: %s", strings.TrimSpace(o.stdout), strings.TrimSpace(o.stderr))
}

func (m *Machine) output(t testing.TB, cmd string) (cmdOutput, int, error) {
	if err := m.wake(); err != nil { // before the command's timeout starts
		return cmdOutput{}, -1, err
	}
	ctx, cancel := context.WithTimeout(testContext(t), DefaultCommandTimeout)
	defer cancel()
	res, err := m.Run(ctx, cmd)
	if res.Truncated {
		t.Logf("guest command %q: output over %d MiB: only its first %d MiB kept", cmd, ssh.MaxOutput>>20, ssh.MaxOutput>>20)
	}
	return cmdOutput{string(res.Stdout), string(res.Stderr)}, res.ExitCode, err
}

// testContext is the test's context while it runs. t.Context() is cancelled just before the
// test's Cleanup functions run, and cleanups must still reach the guest: then it is
// context.Background() (commands stay bounded by their own timeouts).
func testContext(t testing.TB) context.Context {
	if c, ok := t.(interface{ Context() context.Context }); ok && c.Context().Err() == nil {
		return c.Context()
	}
	return context.Background()
}

// BootID is the guest's current boot ID.
func (m *Machine) BootID(ctx context.Context) (string, error) {
	res, err := m.Run(ctx, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// Reboot reboots the guest and waits until it is back with a new boot ID and systemd is done.
func (m *Machine) Reboot(t testing.TB) {
	t.Helper()
	// A reboot is a boot: it takes one of the host's boot slots, and its bound starts then.
	boot, err := slots.AcquireBoot(testContext(t), m.cfg.CPUs, func(f string, a ...any) { m.log("vm "+m.name+": "+f, a...) })
	if err != nil {
		t.Fatalf("reboot: %v", err)
	}
	defer boot.Release()
	if m.niced {
		m.setNice(0) // a boot like any other
		defer m.yieldToBoots()
	}
	ctx, cancel := m.bootBound(testContext(t), m.cfg.BootTimeout)
	defer cancel()
	if err := boundCause(ctx, m.reboot(ctx)); err != nil {
		t.Fatalf("reboot: %v", err)
	}
}

func (m *Machine) reboot(ctx context.Context) error {
	old, err := m.BootID(ctx)
	if err != nil {
		return err
	}

	start := time.Now()
	// The connection may drop before the reply, or hang: user-net keeps a TCP connection to a
	// guest that went away open, so every command here has its own short bound. The reboot is
	// confirmed by the new boot ID.
	const step = 20 * time.Second
	rctx, rcancel := context.WithTimeout(ctx, step)
	res, err := m.Run(rctx, "sudo systemctl reboot")
	rcancel()
	if err == nil && res.ExitCode != 0 {
		// Refused (no sudo, a blocking inhibitor, ...): nothing will reboot, so do not wait.
		return fmt.Errorf("`sudo systemctl reboot` exited %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	m.dropClient()
	for {
		if err := m.dialSSH(ctx); err != nil {
			return err
		}
		bctx, bcancel := context.WithTimeout(ctx, step)
		id, err := m.BootID(bctx)
		bcancel()
		if err == nil && id != old {
			m.bootID = id
			m.dmesgSeen = 0
			break
		}
		// Still the old boot (sshd not yet stopped): drop it and wait for the new one.
		m.dropClient()
		select {
		case <-ctx.Done():
			return fmt.Errorf("guest did not come back with a new boot ID: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	m.log("vm %s: rebooted, SSH back after %.1fs", m.name, time.Since(start).Seconds())
	if err := m.waitSystemd(ctx); err != nil {
		return err
	}
	return nil
}

// CopyTo copies a local file to the guest (go-scp over the kept connection). remote is passed
// to the guest's shell: use only paths the test controls.
func (m *Machine) CopyTo(ctx context.Context, local, remote, mode string) error {
	c := m.sshClient()
	if c == nil {
		return errors.New("not connected to the guest")
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	sc, err := scp.NewClientBySSH(c.Raw())
	if err != nil {
		return err
	}
	gctx, cancel := m.guard(ctx)
	defer cancel()
	if err := sc.CopyFromFile(gctx, *f, remote, mode); err != nil {
		return fmt.Errorf("copying %s to guest:%s: %w", local, remote, err)
	}
	return nil
}

// CopyFrom copies a guest file to a local path.
func (m *Machine) CopyFrom(ctx context.Context, remote, local string) error {
	c := m.sshClient()
	if c == nil {
		return errors.New("not connected to the guest")
	}
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	defer f.Close()
	sc, err := scp.NewClientBySSH(c.Raw())
	if err != nil {
		return err
	}
	gctx, cancel := m.guard(ctx)
	defer cancel()
	if err := sc.CopyFromRemote(gctx, f, remote); err != nil {
		return fmt.Errorf("copying guest:%s to %s: %w", remote, local, err)
	}
	return nil
}

// SessionSetupTime measures opening and closing one SSH session on the kept connection without
// running a command (see ssh.Client.SessionSetupTime).
func (m *Machine) SessionSetupTime(ctx context.Context) (time.Duration, error) {
	c := m.sshClient()
	if c == nil {
		return 0, errors.New("not connected to the guest")
	}
	return c.SessionSetupTime(ctx)
}

// HandshakeTime measures one fresh SSH connection (TCP, handshake, key authentication) to the
// running guest; the kept connection is not touched.
func (m *Machine) HandshakeTime(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	c, err := ssh.Dial(ctx, m.sshCfg)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	c.Close()
	return d, nil
}
