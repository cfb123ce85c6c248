package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// Keep says when artifacts are written.
type Keep string

const (
	KeepNever  Keep = "never"
	KeepFailed Keep = "failed"
	KeepAlways Keep = "always"
	// KeepVMOnFailure writes artifacts as KeepFailed does and keeps a failing test's VM
	// running, registered for vmtest ssh/list/stop, until it is stopped (see hold).
	KeepVMOnFailure Keep = "vm-on-failure"
)

// Config is everything that decides how a machine is started. It comes from the environment
// (VMTEST_*) and is then adjusted by Options.
type Config struct {
	Image       string
	Standin     standin.Flavour // which stand-in is the default image (VMTEST_STANDIN)
	Arch        arch.Arch
	Accel       string
	Profile     string // name or file; "" = detect from /etc/os-release
	MemoryMB    int
	CPUModel    string // -cpu under TCG (VMTEST_CPU_MODEL); "" = the architecture's default
	CPUs        int    // 0 = the accelerator's default (DefaultCPUs)
	Artifacts   string
	Keep        Keep
	BootTimeout time.Duration
	NetOpen     bool // let the guest reach the host's networks (default: only forwarded ports)
	User        string

	// Suite additions to the seed.
	WriteFiles    []cloudinit.File
	BootCmd       []string
	RunCmd        []string
	Extra         map[string]any
	NetworkConfig string
	// Forwards are extra guest TCP ports forwarded to host ports on 127.0.0.1 (host 0 = any).
	Forwards map[int]int
	// HostServices maps a guest port on HostServiceIP to a host TCP address (QEMU guestfwd):
	// the guest reaches a test's host-side listener even with VMTEST_NET=restricted.
	HostServices map[int]string
	// AllowConsole names console checks a test expects to trip (e.g. "kernel panic").
	AllowConsole []string
	// SkipReady skips the cloud-init and systemd stages (SSH only).
	SkipReady bool
	// Restore lets machines start from saved booted states (VMTEST_RESTORE, default on).
	Restore bool
	// Target is where machines come from (VMTEST_TARGET): local QEMU or an existing machine.
	Target Target
	// FreshBoot makes this machine boot from its firmware (WithFreshBoot).
	FreshBoot bool
	// TPM gives the guest a TPM 2.0 (swtpm; WithTPM).
	TPM bool
	// SecureBoot boots with Secure Boot on (WithSecureBoot).
	SecureBoot bool
	// ForeignUserData seeds the machine with this user-data exactly (WithForeignUserData).
	ForeignUserData []byte
	// Log receives Open's progress lines (WithLog); nil: standard error.
	Log func(format string, args ...any)
}

// restorable says whether a machine may be restored from a saved state instead of booted: a
// guest saved at "ready" cannot stand in for one the test wants to see boot.
func (c Config) restorable() bool {
	return c.Restore && !c.FreshBoot && !c.SkipReady && c.ForeignUserData == nil
}

// donatable says whether a machine that boots for real may save its state on the way, for the
// machines of the same configuration that are restored. One with a TPM or Secure Boot does not:
// its saved state is built by the first restore's own boot (no test boots such a machine for
// real for others to restore, so saving one on the way is untried).
func (c Config) donatable() bool {
	return c.Restore && c.FreshBoot && !c.SkipReady && !c.TPM && !c.SecureBoot && c.ForeignUserData == nil
}

// artifacts says whether a machine's artifacts are written, given whether its test failed.
func (k Keep) artifacts(failed bool) bool {
	return k == KeepAlways || (failed && (k == KeepFailed || k == KeepVMOnFailure))
}

// Option adjusts a Config.
type Option func(*Config)

// WithMemory sets the guest's memory in MiB.
func WithMemory(mb int) Option { return func(c *Config) { c.MemoryMB = mb } }

// WithCPUs sets the guest's CPU count (default: DefaultCPUs for the accelerator).
func WithCPUs(n int) Option { return func(c *Config) { c.CPUs = n } }

// WithArch sets the guest architecture (x86_64, aarch64); the default image follows it.
func WithArch(a arch.Arch) Option {
	return func(c *Config) {
		if c.Image == standin.ImagePath(standin.CacheDir(), c.Arch, c.Standin) {
			c.Image = standin.ImagePath(standin.CacheDir(), a, c.Standin)
		}
		c.Arch = a
	}
}

// WithImage boots another image.
func WithImage(path string) Option { return func(c *Config) { c.Image = path } }

// WithWriteFiles adds cloud-init write_files entries.
func WithWriteFiles(f ...cloudinit.File) Option {
	return func(c *Config) { c.WriteFiles = append(c.WriteFiles, f...) }
}

// WithRunCmd adds cloud-init runcmd entries (shell lines).
func WithRunCmd(cmds ...string) Option {
	return func(c *Config) { c.RunCmd = append(c.RunCmd, cmds...) }
}

// WithBootCmd adds cloud-init bootcmd entries.
func WithBootCmd(cmds ...string) Option {
	return func(c *Config) { c.BootCmd = append(c.BootCmd, cmds...) }
}

// WithUserData adds top-level cloud-config keys the harness does not own.
func WithUserData(key string, value any) Option {
	return func(c *Config) {
		if c.Extra == nil {
			c.Extra = map[string]any{}
		}
		c.Extra[key] = value
	}
}

// WithNetworkConfig sets NoCloud network-config (version 2 YAML).
func WithNetworkConfig(yaml string) Option { return func(c *Config) { c.NetworkConfig = yaml } }

// WithForward forwards a guest TCP port to 127.0.0.1 on the host (hostPort 0 picks a free one;
// Machine.HostPort tells which).
func WithForward(guestPort, hostPort int) Option {
	return func(c *Config) {
		if c.Forwards == nil {
			c.Forwards = map[int]int{}
		}
		c.Forwards[guestPort] = hostPort
	}
}

// WithHostService lets the guest reach hostAddr (a listener the test opened on the host) at
// HostServiceIP:guestPort.
func WithHostService(guestPort int, hostAddr string) Option {
	return func(c *Config) {
		if c.HostServices == nil {
			c.HostServices = map[int]string{}
		}
		c.HostServices[guestPort] = hostAddr
	}
}

// WithAllowConsole lets named console checks match without failing the test.
func WithAllowConsole(names ...string) Option {
	return func(c *Config) { c.AllowConsole = append(c.AllowConsole, names...) }
}

// WithBootTimeout bounds the boot (QEMU start to ready).
func WithBootTimeout(d time.Duration) Option { return func(c *Config) { c.BootTimeout = d } }

// WithSSHOnly makes readiness stop at the first SSH login (no cloud-init or systemd wait).
func WithSSHOnly() Option { return func(c *Config) { c.SkipReady = true } }

// WithNetOpen lets the guest reach the host's networks through QEMU's user-net (which then
// offers a DHCP router), as VMTEST_NET=open does for every VM.
func WithNetOpen() Option { return func(c *Config) { c.NetOpen = true } }

// WithFreshBoot makes the machine boot from its firmware even when a saved booted state could
// stand in for it: for tests about the boot itself (console at boot, boot stages, cloud-init's
// first run).
// If no state is saved for its configuration yet, the booted machine saves one on the way
// (seconds), so that it is the only boot of that configuration in the run.
func WithFreshBoot() Option { return func(c *Config) { c.FreshBoot = true } }

// WithTPM gives the guest a TPM 2.0: a software TPM (swtpm) whose state lives and dies with
// the VM, on the architecture's TPM device (tpm-crb on x86-64, tpm-tis-device on aarch64). A
// machine with a TPM is restored like any other: QEMU's emulator backend carries the TPM's
// state (its PCRs, its keys: swtpm's state blobs) in the saved memory and hands it to the
// restored VM's own, new swtpm; the state's key names the swtpm binary.
func WithTPM() Option { return func(c *Config) { c.TPM = true } }

// WithSecureBoot boots the guest with Secure Boot on: the architecture's Secure Boot UEFI
// firmware with Microsoft's keys enrolled (OVMF_CODE_4M.secboot.fd and OVMF_VARS_4M.ms.fd on
// x86-64, under q35 with SMM; AAVMF's .ms vars on aarch64), so only a boot chain signed for
// them starts: shim signed by Microsoft, then the distribution's signed GRUB and kernel. An
// image without that chain stops in the firmware (the console says "Access Denied"). Such a
// machine is restored like any other (WithFreshBoot boots it): the chain was checked by the
// boot that built its saved state, which is keyed by the image, the firmware and its keys, so
// a changed image boots (and is judged) again.
func WithSecureBoot() Option { return func(c *Config) { c.SecureBoot = true } }

// WithLog sends a machine's progress lines (the boot's stages, then what it logs while it
// lives) to f instead of standard error: for tools that draw them (vmtest spawn's live line).
// Tests get their lines through t.Logf whatever this says.
func WithLog(f func(format string, args ...any)) Option { return func(c *Config) { c.Log = f } }

// WithForeignUserData boots a local QEMU machine (whatever VMTEST_TARGET says) seeded with ud
// exactly, as another tool or a cloud would seed it: the harness's keys are not in it, so the
// harness does not log in or wait; the machine is returned once QEMU runs, and is reached with
// what ud authorizes, at HostPort(22). It plays the VM of a fake cloud in the azure target's
// self-test.
func WithForeignUserData(ud []byte) Option {
	return func(c *Config) {
		c.ForeignUserData = ud
		c.FreshBoot = true
		c.Target = Target{Kind: TargetQEMU}
	}
}

// ConfigFromEnv reads VMTEST_* (see README).
func ConfigFromEnv() (Config, error) {
	setup()
	c := Config{Accel: "auto", MemoryMB: DefaultMemoryMB, Keep: KeepFailed, User: "azlvmtest", Restore: true}
	var err error
	if c.Target, err = targetFromEnv(); err != nil {
		return c, err
	}
	archName := os.Getenv("VMTEST_ARCH")
	if archName == "" {
		c.Arch, err = arch.Host()
	} else {
		c.Arch, err = arch.Lookup(archName)
	}
	if err != nil {
		return c, fmt.Errorf("VMTEST_ARCH: %w", err)
	}
	if c.Standin, err = standin.ParseFlavour(os.Getenv("VMTEST_STANDIN")); err != nil {
		return c, fmt.Errorf("VMTEST_STANDIN: %w", err)
	}
	c.Image = os.Getenv("VMTEST_IMAGE")
	if c.Image == "" {
		if why := c.Standin.Supports(c.Arch); why != "" {
			return c, fmt.Errorf("VMTEST_STANDIN=%s: %s (unset VMTEST_ARCH or set it to the host's)", c.Standin, why)
		}
		c.Image = standin.ImagePath(standin.CacheDir(), c.Arch, c.Standin)
	}
	switch v := os.Getenv("VMTEST_ACCEL"); v {
	case "":
	case "auto", "kvm", "tcg":
		c.Accel = v
	default:
		return c, fmt.Errorf("VMTEST_ACCEL=%q: use auto, kvm or tcg", v)
	}
	c.Profile = os.Getenv("VMTEST_PROFILE")
	if c.Profile != "" {
		if _, err := profile.Load(c.Profile); err != nil {
			return c, fmt.Errorf("VMTEST_PROFILE: %w", err)
		}
	}
	c.CPUModel = os.Getenv("VMTEST_CPU_MODEL")
	hostMB := slots.MemTotalMB()
	if c.MemoryMB, err = envInt("VMTEST_MEM", c.MemoryMB, MinMemoryMB, hostMB, fmt.Sprintf("MiB of guest memory: at least %d, at most the host's %d", MinMemoryMB, hostMB)); err != nil {
		return c, err
	}
	if c.CPUs, err = envInt("VMTEST_CPUS", c.CPUs, 1, MaxCPUs, fmt.Sprintf("guest CPUs, 1 to %d", MaxCPUs)); err != nil {
		return c, err
	}
	c.Artifacts = os.Getenv("VMTEST_ARTIFACTS")
	if c.Artifacts == "" {
		c.Artifacts = filepath.Join(moduleRoot(), "_artifacts")
	}
	if err := writable(c.Artifacts); err != nil {
		return c, fmt.Errorf("VMTEST_ARTIFACTS=%s is not a writable folder (%v): artifacts of failing tests would be lost; set it to one", c.Artifacts, err)
	}
	if v := os.Getenv("VMTEST_KEEP"); v != "" {
		switch Keep(v) {
		case KeepNever, KeepFailed, KeepAlways, KeepVMOnFailure:
			c.Keep = Keep(v)
		default:
			return c, fmt.Errorf("VMTEST_KEEP=%q: use never, failed, always or vm-on-failure", v)
		}
	}
	if v := os.Getenv("VMTEST_BOOT_TIMEOUT"); v != "" {
		if c.BootTimeout, err = time.ParseDuration(v); err != nil || c.BootTimeout <= 0 {
			return c, fmt.Errorf("VMTEST_BOOT_TIMEOUT=%q: want a positive duration such as 5m", v)
		}
	}
	switch v := os.Getenv("VMTEST_RESTORE"); v {
	case "", "1", "on", "true":
	case "0", "off", "false":
		c.Restore = false
	default:
		return c, fmt.Errorf("VMTEST_RESTORE=%q: use 1 (restore saved booted states, the default) or 0 (boot every VM)", v)
	}
	// Extra first-boot commands for every VM: to reproduce a bug in the suites' VMs, or to break
	// a promise on purpose (the broken-guest self-test).
	for _, l := range strings.Split(os.Getenv("VMTEST_RUNCMD"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.RunCmd = append(c.RunCmd, l)
		}
	}
	switch v := os.Getenv("VMTEST_NET"); v {
	case "", "restricted":
	case "open":
		c.NetOpen = true
	default:
		return c, fmt.Errorf("VMTEST_NET=%q: use restricted or open", v)
	}
	if _, err := slots.HostBudget(); err != nil {
		return c, err
	}
	return c, nil
}

// Bounds on a guest's size: below MinMemoryMB no distribution boots (it would only time out).
//
// DefaultMemoryMB is the guest memory a VM gets unless VMTEST_MEM or WithMemory says otherwise.
// A ready stand-in uses about 310 MiB (plus 130 of page cache), and the suites that need the
// most (packages, hardening) pass at 1 GiB on both architectures. More costs every
// restore: QEMU 7.2 reads each page of guest memory that the saved state marks as zero, and
// each read gives QEMU a host page of its own, so a restored VM held 2.3 GB of host memory at
// 2 GiB and took 2.8 s to load (1.2 GB and 0.7 s at 1 GiB; docs/performance.md).
const (
	MinMemoryMB     = 512
	DefaultMemoryMB = 1024
	MaxCPUs         = 64
)

// envInt reads an integer variable within [min, max]; what says what it is, for the message.
func envInt(name string, def, min, max int, what string) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s=%q: want %s", name, v, what)
	}
	return n, nil
}

// writable makes sure dir exists and a file can be created in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// moduleRoot is the folder holding go.mod above the working directory (go test runs in the
// package's folder), or the working directory.
func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}
