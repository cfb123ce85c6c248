package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
	"github.com/azl-vmtest/azl-vmtest/harness/tpm"
)

// A restored machine starts from a saved state: a guest booted once to ready with the same
// image, architecture, accelerator, CPU model, memory, CPUs, network mode, device set and seed
// additions (savedstate.Inputs), paused and saved. Restored machines therefore share what that
// boot created: the SSH host key and the test user's key, the machine-id, the boot_id, the
// instance-id, the DHCP lease and whatever the kernel's RNG held at the save. The checks only
// read what the image promises, which is the same in every such guest, and each restore gets a
// new random seed (host entropy written to /dev/urandom), the host's clock (date -s) and its own
// marker (/run/azl-vmtest/instance-id, InstanceID). Every restored VM writes to its own qcow2
// overlay over the saved disk: restored VMs never share a writable file. A reboot of a restored
// machine is a real reboot.

// stateInputs is everything that shapes the state a machine with l's configuration would save.
func (l launch) stateInputs() (savedstate.Inputs, error) {
	cfg := l.cfg
	img, err := savedstate.Identify(l.info.Path)
	if err != nil {
		return savedstate.Inputs{}, err
	}
	in := savedstate.Inputs{Image: img, Arch: cfg.Arch.Name, Accel: l.accel, MemoryMB: cfg.MemoryMB,
		CPUs: cfg.CPUs, NetOpen: cfg.NetOpen, Devices: fmt.Sprintf("hotplug-ports=%d cidata pvpanic-pci", hotplugSlots)}
	if l.accel != qemu.AccelKVM {
		in.CPUModel = cfg.CPUModel
		if in.CPUModel == "" {
			in.CPUModel = cfg.Arch.TCGCPU
		}
	}
	if bin, err := exec.LookPath(cfg.Arch.QEMUBinary); err == nil {
		in.QEMU, _ = savedstate.Identify(bin)
	}
	firmware := cfg.Arch.Firmware
	if cfg.SecureBoot {
		firmware, in.SecureBoot = cfg.Arch.SecureBootFirmware, true
	}
	if code, _, err := firmware(); err == nil {
		in.Firmware, _ = savedstate.Identify(code)
	}
	if cfg.TPM {
		bin, err := tpm.Binary()
		if err != nil {
			return in, err
		}
		if in.TPM, err = savedstate.Identify(bin); err != nil {
			return in, err
		}
	}
	seed, err := json.Marshal(map[string]any{"write_files": cfg.WriteFiles, "bootcmd": cfg.BootCmd,
		"runcmd": cfg.RunCmd, "extra": cfg.Extra, "network_config": cfg.NetworkConfig})
	if err != nil {
		return in, err
	}
	in.Seed = map[string]string{"user": cfg.User, "additions": string(seed)}
	return in, nil
}

// StateKey is the key of the saved state a machine started with opts (and the environment)
// would restore from or save, without starting anything.
func StateKey(ctx context.Context, opts ...Option) (string, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return "", err
	}
	for _, o := range opts {
		o(&cfg)
	}
	info, err := inspectImage(ctx, cfg)
	if err != nil {
		return "", err
	}
	accel, _, err := qemu.ResolveAccel(cfg.Accel, cfg.Arch)
	if err != nil {
		return "", err
	}
	cfg.settle(accel)
	in, err := launch{cfg: cfg, info: info, accel: accel}.stateInputs()
	if err != nil {
		return "", err
	}
	return in.Key(), nil
}

// state is where the saved state for l's configuration lives: its inputs, the states' folder
// and its key.
func (l launch) state() (in savedstate.Inputs, root, key string, err error) {
	if in, err = l.stateInputs(); err != nil {
		return in, "", "", err
	}
	root, err = savedstate.Root()
	return in, root, in.Key(), err
}

// restore starts a machine from the saved state for l's configuration, building the state
// first (one real boot, under a lock shared by every process) if none is saved or the saved
// one fails its checks.
func (l launch) restore(ctx context.Context, name string, logf func(string, ...any)) (*Machine, error) {
	in, root, key, err := l.state()
	if err != nil {
		return nil, err
	}
	for tries := 1; ; tries++ {
		m, err := l.restoreOnce(ctx, in, root, key, name, logf)
		if errors.Is(err, savedstate.ErrChanged) && tries < 3 {
			// Found unusable by another run while this one waited for a VM slot: open (or
			// build) it again.
			logf("vm %s: %v: opening it again", name, err)
			continue
		}
		return m, err
	}
}

// restoreOnce opens (or builds) the saved state and restores a machine from it.
func (l launch) restoreOnce(ctx context.Context, in savedstate.Inputs, root, key, name string, logf func(string, ...any)) (*Machine, error) {
	st, err := savedstate.Open(root, key)
	if err != nil {
		unblock := func() {}
		lock, lerr := savedstate.Lock(ctx, root, key, func() {
			logf("vm %s: waiting for another run that is saving the booted state %s", name, key)
			unblock = slots.Blocked()
		})
		unblock()
		if lerr != nil {
			return nil, lerr
		}
		defer lock.Unlock()
		st, err = savedstate.Open(root, key) // built while we waited?
		if err != nil {
			if !errors.Is(err, savedstate.ErrMissing) {
				logf("vm %s: the saved state is unusable, rebuilding it: %v", name, err)
				if rerr := savedstate.Remove(root, key); rerr != nil {
					return nil, rerr
				}
			}
			if st, err = l.saveState(ctx, root, key, in, logf); err != nil {
				return nil, err
			}
		}
		lock.Unlock()
	}
	m, err := l.restoreFrom(ctx, st, name, logf)
	var le *loadError
	if errors.As(err, &le) && st.Recheck() == nil {
		// QEMU could not load a state that passed its checks (a QEMU that cannot read what it
		// wrote): remove it, so that the next start rebuilds it rather than fail the same way
		// (unless another run has already replaced it).
		logf("vm %s: QEMU could not load the saved state: removing it; the next start rebuilds it", name)
		_ = savedstate.Remove(root, key)
	}
	if err != nil && m == nil {
		return nil, err
	}
	return m, err
}

// loadError is QEMU failing to load a saved state.
type loadError struct{ err error }

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// saveState boots a machine to ready, saves it and commits the state under key.
func (l launch) saveState(ctx context.Context, root, key string, in savedstate.Inputs, logf func(string, ...any)) (*savedstate.State, error) {
	stage, err := savedstate.NewStaging(root, key, in)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			stage.Discard()
		}
	}()
	t0 := time.Now()
	logf("vm state-%s: no saved booted state for this configuration: booting one to save (once; later VMs restore it)", key)
	m, err := l.boot(ctx, "state-"+key, logf, stage.Path(savedstate.DiskFile))
	if m != nil {
		defer m.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("booting the VM to save: %w", err)
	}
	if d := m.Dead(); d != nil {
		return nil, fmt.Errorf("booting the VM to save: %w", d)
	}
	boot := time.Since(t0)
	// No connection may be open in the saved guest: user-net does not carry host sockets
	// across a restore.
	m.dropClient()
	t1 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := m.inst.Save(sctx, stage.Path(savedstate.MemoryFile)); err != nil {
		return nil, err
	}
	// The guest is paused: its firmware variables and overlay are final. Quit QEMU so the
	// overlay is closed (flushed) before it is checksummed.
	m.inst.Stop(30 * time.Second)
	if err := qemu.CopyFile(filepath.Join(m.dir, "efivars.fd"), stage.Path(savedstate.VarsFile)); err != nil {
		return nil, err
	}
	if err := qemu.CopyFile(filepath.Join(m.dir, "seed.iso"), stage.Path(savedstate.SeedFile)); err != nil {
		return nil, err
	}
	meta := savedstate.Meta{UserKeyPEM: m.userKey.PrivatePEM, HostKeyPEM: m.hostKey.PrivatePEM,
		UserData: string(m.userData), User: m.cfg.User, BootTime: boot}
	meta.SaveTime = time.Since(t1)
	st, err := stage.Commit(meta)
	if err != nil {
		return nil, err
	}
	committed = true
	recordStart(m.cfg, "save", m.name, meta.SaveTime)
	logf("vm state-%s: booted in %.1fs, saved in %.1fs (%s)", key, boot.Seconds(), time.Since(t1).Seconds(), st.Dir)
	return st, nil
}

// bootAndSave boots a machine for real and, if no usable state is saved for its configuration
// and no other run is saving one, saves it on the way without ending it: the guest is paused,
// its disk moves onto a new overlay (the old one becomes the state's disk), its memory is saved,
// and it resumes. A test that needs a real boot so also builds the state the other tests
// restore, and replaces one that fails its checks (saying so).
func (l launch) bootAndSave(ctx context.Context, name string, logf func(string, ...any)) (*Machine, error) {
	in, root, key, err := l.state()
	if err != nil {
		return nil, err
	}
	if _, err := savedstate.Open(root, key); err == nil {
		return l.boot(ctx, name, logf, "")
	}
	lock, free, err := savedstate.TryLock(root, key)
	if err != nil || !free {
		return l.boot(ctx, name, logf, "") // another run saves it
	}
	defer lock.Unlock()
	_, err = savedstate.Open(root, key)
	switch {
	case err == nil:
		return l.boot(ctx, name, logf, "")
	case !errors.Is(err, savedstate.ErrMissing):
		logf("vm %s: the saved state is unusable, rebuilding it on the way: %v", name, err)
	}
	stage, err := savedstate.NewStaging(root, key, in)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	m, err := l.boot(ctx, name, logf, stage.Path(savedstate.DiskFile))
	if err != nil {
		stage.Discard()
		return m, err
	}
	if err := m.saveAndContinue(ctx, stage, time.Since(t0)); err != nil {
		stage.Discard()
		return m, fmt.Errorf("saving the booted state on the way: %w", err)
	}
	return m, nil
}

// saveAndContinue saves the running, ready machine into stage and resumes it on a new overlay.
func (m *Machine) saveAndContinue(ctx context.Context, stage *savedstate.Staging, boot time.Duration) error {
	m.dropClient()
	t1 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := m.inst.Pause(sctx); err != nil {
		return err
	}
	if err := m.inst.SwitchOverlay(sctx, filepath.Join(m.dir, "overlay.qcow2")); err != nil {
		return err
	}
	if err := m.inst.Save(sctx, stage.Path(savedstate.MemoryFile)); err != nil {
		return err
	}
	if err := qemu.CopyFile(filepath.Join(m.dir, "efivars.fd"), stage.Path(savedstate.VarsFile)); err != nil {
		return err
	}
	if err := qemu.CopyFile(filepath.Join(m.dir, "seed.iso"), stage.Path(savedstate.SeedFile)); err != nil {
		return err
	}
	if err := m.inst.Resume(sctx); err != nil {
		return err
	}
	save := time.Since(t1)
	meta := savedstate.Meta{UserKeyPEM: m.userKey.PrivatePEM, HostKeyPEM: m.hostKey.PrivatePEM,
		UserData: string(m.userData), User: m.cfg.User, BootTime: boot, SaveTime: save}
	st, err := stage.Commit(meta)
	if err != nil {
		return err
	}
	m.log("vm %s: saved its booted state on the way in %.1fs (%s)", m.name, save.Seconds(), st.Dir)
	recordStart(m.cfg, "save", m.name, save)
	if err := m.dialSSH(sctx); err != nil {
		return err
	}
	// The guest's clock stood still while it was paused.
	return m.refresh(sctx)
}

// restoreFrom starts a new QEMU that loads st on a fresh overlay, resumes it and reconnects.
func (l launch) restoreFrom(ctx context.Context, st *savedstate.State, name string, logf func(string, ...any)) (*Machine, error) {
	m, ctx, err := l.newMachine(ctx, name, logf)
	if err != nil {
		return nil, err
	}
	defer m.removeIfNeverStarted()
	defer m.starting.Done()
	m.restoredFrom = st.Key
	m.recheck = st.Recheck
	if m.userKey, err = cloudinit.ParseKeyPair(st.Meta.UserKeyPEM, m.cfg.User+"@azl-vmtest"); err != nil {
		return nil, err
	}
	if m.hostKey, err = cloudinit.ParseKeyPair(st.Meta.HostKeyPEM, "azl-vmtest-host"); err != nil {
		return nil, err
	}
	m.userData = []byte(st.Meta.UserData)
	qc, err := l.qemuConfig(ctx, m, st.Path(savedstate.SeedFile))
	if err != nil {
		return nil, err
	}
	qc.Image = qemu.ImageInfo{Path: st.Path(savedstate.DiskFile), Format: "qcow2"}
	qc.Vars = st.Path(savedstate.VarsFile)
	qc.Incoming = st.Path(savedstate.MemoryFile)
	if err := m.launch(ctx, qc); err != nil {
		return nil, err
	}
	bctx, cancel := m.bootBound(ctx, m.cfg.BootTimeout)
	defer cancel()
	if err := m.resumeRestored(bctx, st); err != nil {
		return m, boundCause(bctx, err)
	}
	if err := m.detectProfile(ctx); err != nil {
		return m, err
	}
	// Ready: from now on it runs a test's commands, and yields to boots (RestoredNice).
	m.yieldToBoots()
	m.stage("ready (restored from "+st.Key+")", m.Stages.Ready)
	recordStart(m.cfg, "restore", name, m.Stages.Ready)
	return m, nil
}

// resumeRestored loads the saved state into the started QEMU, resumes the guest and
// re-establishes what the restore made stale (SSH, the clock, entropy: refresh).
func (m *Machine) resumeRestored(bctx context.Context, st *savedstate.State) error {
	if err := m.inst.AwaitIncoming(bctx); err != nil {
		err = fmt.Errorf("restoring the saved state %s: %w", st.Dir, err)
		// Only QEMU failing by itself says the state is bad: one ended by a signal or by the
		// harness (Ctrl-C, a test's timeout) while loading must not remove the state that
		// other VMs are about to restore.
		if m.inst.FailedByItself() && bctx.Err() == nil {
			err = &loadError{err}
		}
		return err
	}
	if err := m.inst.Resume(bctx); err != nil {
		return err
	}
	m.Stages.Restore = time.Since(m.started)
	m.stage("saved state loaded, guest resumed", m.Stages.Restore)
	if err := m.dialSSH(bctx); err != nil {
		return err
	}
	m.Stages.SSH = time.Since(m.started)
	m.stage("SSH handshake with the pinned host key", m.Stages.SSH)
	if err := m.refresh(bctx); err != nil {
		return err
	}
	m.Stages.Ready = time.Since(m.started)
	return nil
}

// refresh re-establishes in a restored guest what the restore made stale or shared: the clock
// (stepped to the host's), the kernel's entropy (fresh host bytes mixed in) and a marker that
// tells this restore from every other.
func (m *Machine) refresh(ctx context.Context) error {
	seed := make([]byte, 64)
	id := make([]byte, 16)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	if _, err := rand.Read(id); err != nil {
		return err
	}
	m.instanceID = hex.EncodeToString(id)
	// The clock is set from the guest's own uptime plus an offset measured now, not from a
	// host timestamp baked into the command: under load sudo alone can take seconds, and a
	// timestamp would land that late (seen here: 8 s behind).
	up, sent, answered, err := m.guestUptime(ctx)
	if err != nil {
		return fmt.Errorf("refreshing the restored guest: %w", err)
	}
	if m.Stages.Restore > 0 { // a restore, not the boot that saved the state
		m.Stages.FirstCommand = answered.Sub(m.started)
		m.stage("first command answered", m.Stages.FirstCommand)
	}
	mid := sent.Add(answered.Sub(sent) / 2)
	offset := float64(mid.UnixNano())/1e9 - up.Seconds()
	// Hex text carries the same 512 bits into the pool as the raw bytes would.
	script := fmt.Sprintf(`date -u -s @$(awk -v o=%.3f '{printf "%%.3f", $1+o}' /proc/uptime) >/dev/null && echo %s > /dev/urandom && mkdir -p /run/azl-vmtest && echo %s > /run/azl-vmtest/instance-id`,
		offset, hex.EncodeToString(seed), m.instanceID)
	// As root in the kept root shell: the after-test log checks that follow use it too.
	res, err := m.asRoot(ctx, script)
	if err != nil {
		return fmt.Errorf("refreshing the restored guest: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("refreshing the restored guest: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}
