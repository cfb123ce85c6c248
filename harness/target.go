package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/console"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// Target kinds: where machines come from (VMTEST_TARGET).
const (
	// TargetQEMU boots the image under a local QEMU (the default).
	TargetQEMU = "qemu"
	// TargetSSH reaches a machine that already runs (ssh://user@host:port), e.g. an Azure VM
	// or a contributor's own: every suite runs against it; what needs QEMU skips.
	TargetSSH = "ssh"
)

// Target is where a suite's machines come from.
type Target struct {
	Kind string
	// The ssh target: the machine's address (host:port) and login, the private key file that
	// logs in, and the host key it must present (pinned: any other fails the handshake).
	Addr, User, KeyFile string
	HostKey             gossh.PublicKey
	signer              gossh.Signer
	// The azure target: what to provision (VMTEST_AZURE_*, AZURE_SUBSCRIPTION_ID).
	Azure *azure.Config
}

func (t Target) String() string {
	switch t.Kind {
	case TargetSSH:
		return "ssh://" + t.User + "@" + t.Addr
	case TargetAzure:
		return "azure (" + t.Azure.Location + ", " + t.Azure.Image.String() + ", " + t.Azure.Size + ")"
	}
	return t.Kind
}

// targetFromEnv reads VMTEST_TARGET and, for ssh://, VMTEST_SSH_KEY and VMTEST_SSH_HOST_KEY.
// Every mistake is reported before anything is dialled, naming the variable to fix.
func targetFromEnv() (Target, error) {
	v := os.Getenv("VMTEST_TARGET")
	switch {
	case v == "" || v == TargetQEMU:
		return Target{Kind: TargetQEMU}, nil
	case v == TargetAzure:
		c, err := azure.FromEnv(os.Getenv)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: TargetAzure, Azure: &c}, nil
	case !strings.HasPrefix(v, "ssh://"):
		return Target{}, fmt.Errorf("VMTEST_TARGET=%q: use qemu (the default) or ssh://user@host:port", v)
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil || u.User.Username() == "" || u.Hostname() == "" || u.Path != "" {
		return Target{}, fmt.Errorf("VMTEST_TARGET=%q: want ssh://user@host:port (user and host required, no path)", v)
	}
	if _, pw := u.User.Password(); pw {
		return Target{}, fmt.Errorf("VMTEST_TARGET: no password in the URL: the ssh target logs in with the key in VMTEST_SSH_KEY")
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	t := Target{Kind: TargetSSH, User: u.User.Username(), Addr: net.JoinHostPort(u.Hostname(), port)}

	t.KeyFile = os.Getenv("VMTEST_SSH_KEY")
	if t.KeyFile == "" {
		return Target{}, fmt.Errorf("VMTEST_TARGET=%s needs VMTEST_SSH_KEY: the private key file that logs in as %s", t, t.User)
	}
	b, err := os.ReadFile(t.KeyFile)
	if err != nil {
		return Target{}, fmt.Errorf("VMTEST_SSH_KEY: %w", err)
	}
	if t.signer, err = gossh.ParsePrivateKey(b); err != nil {
		return Target{}, fmt.Errorf("VMTEST_SSH_KEY=%s: not an unencrypted private key (%v): give a key file without a passphrase", t.KeyFile, err)
	}
	hk := os.Getenv("VMTEST_SSH_HOST_KEY")
	if hk == "" {
		return Target{}, fmt.Errorf("VMTEST_TARGET=%s needs VMTEST_SSH_HOST_KEY: the machine's host public key (a line such as \"ssh-ed25519 AAAA...\", or a file holding it or known_hosts lines; ssh-keyscan prints them). The harness never accepts an unknown host key", t)
	}
	if t.HostKey, err = parseHostKey(hk, t.Addr); err != nil {
		return Target{}, fmt.Errorf("VMTEST_SSH_HOST_KEY: %w", err)
	}
	return t, nil
}

// parseHostKey reads a host key from an authorized_keys-style line, or from a file of such
// lines or of known_hosts lines (the first entry that names addr, or the only key).
func parseHostKey(v, addr string) (gossh.PublicKey, error) {
	if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(v)); err == nil {
		return k, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a public key line nor a readable file: %w", v, err)
	}
	var keys []gossh.PublicKey
	for _, line := range strings.Split(string(b), "\n") {
		// known_hosts first: an authorized_keys parse would take its host field for options.
		if _, hosts, k, _, _, err := gossh.ParseKnownHosts([]byte(line)); err == nil {
			for _, h := range hosts {
				if h == addr || h == knownHostsName(addr) {
					return k, nil
				}
			}
			keys = append(keys, k)
			continue
		}
		if k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, k)
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%s holds no public key", v)
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("%s holds %d keys and none for %s: give the one to pin", v, len(keys), addr)
}

// knownHostsName is how known_hosts names addr: "host" on port 22, "[host]:port" otherwise.
func knownHostsName(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "22" {
		return host
	}
	return "[" + host + "]:" + port
}

// Power is something a target can do beyond running commands, copying files and rebooting.
type Power string

// The powers a target may have beyond SSH: local QEMU has all of them; an Azure VM has a
// seed (its custom data is the harness's user-data); an existing machine has none.
const (
	PowerConsole      Power = "the serial console"
	PowerQMP          Power = "QEMU's monitor (QMP: hot-plug, guest status)"
	PowerHostNetwork  Power = "host ports forwarded into and out of the guest"
	PowerSeed         Power = "a cloud-init seed the harness wrote (user-data, injected keys)"
	PowerSavedState   Power = "saved booted states"
	PowerVirtHardware Power = "a second machine with other virtual hardware (Secure Boot off, no TPM)"
	PowerAccelerator  Power = "a hypervisor the harness chose (KVM or TCG)"
)

// Has reports whether the machine's target has power p.
func (m *Machine) Has(p Power) bool {
	switch m.cfg.Target.Kind {
	case TargetSSH:
		return false
	case TargetAzure:
		return p == PowerSeed
	}
	return m.inst != nil
}

// Require skips the test, naming what is missing, unless the machine's target has power p.
// A check that cannot be made there is skipped, never passed.
func (m *Machine) Require(t testing.TB, p Power) {
	t.Helper()
	if !m.Has(p) {
		t.Skipf("needs %s: target %s has none", p, m.cfg.Target)
	}
}

// Target is where the machine came from.
func (m *Machine) Target() Target { return m.cfg.Target }

// ConnectTimeout bounds the first login to an ssh target's machine.
var ConnectTimeout = 90 * time.Second

// connect reaches the ssh target's machine: it must answer within ConnectTimeout, present the
// pinned host key and accept the key. Nothing is booted, seeded or saved: the machine is the
// user's.
func connect(ctx context.Context, cfg Config, name string, logf func(string, ...any)) (*Machine, error) {
	dir, err := newPrivateDir(name)
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, name: name, dir: dir, logf: logf, started: time.Now()}
	register(m)
	t := cfg.Target
	m.hostKey = &cloudinit.KeyPair{PublicLine: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(t.HostKey)))}
	m.userKey = &cloudinit.KeyPair{Signer: t.signer, PublicLine: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(t.signer.PublicKey())))}
	m.sshCfg = ssh.Config{Addr: t.Addr, User: t.User, Signer: t.signer, HostKey: t.HostKey}
	m.log("vm %s: target %s (an existing machine: no QEMU, console, seed or saved state)", name, t)
	// A reboot is bounded by the boot timeout (6 min unless VMTEST_BOOT_TIMEOUT: a TCG guest
	// or an Azure VM can take minutes); the first login by ConnectTimeout, as the machine
	// should already be up: a wrong address fails in seconds, not minutes.
	if cfg.BootTimeout == 0 {
		m.cfg.BootTimeout = 6 * time.Minute
	}
	if err := m.attach(ctx, min(ConnectTimeout, m.cfg.BootTimeout)); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// attach makes a machine reached over SSH (m.sshCfg) ready: the first login within
// firstLogin, then the harness waits until systemd is done, reads the architecture, picks the
// profile (VMTEST_PROFILE, else os-release) and marks the kernel log so far as seen.
func (m *Machine) attach(ctx context.Context, firstLogin time.Duration) (err error) {
	t := m.cfg.Target
	defer func() {
		if err != nil {
			err = fmt.Errorf("target %s: %w", t, err)
		}
	}()
	if m.cfg.Profile != "" {
		if m.profile, err = profile.Load(m.cfg.Profile); err != nil {
			return fmt.Errorf("VMTEST_PROFILE: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, firstLogin)
	defer cancel()
	if err := m.dialSSH(cctx); err != nil {
		return err
	}
	if err := m.waitSystemd(cctx); err != nil {
		return err
	}
	res, err := m.Run(cctx, "uname -m")
	if err == nil {
		var a arch.Arch
		if a, err = arch.Lookup(strings.TrimSpace(string(res.Stdout))); err == nil {
			m.cfg.Arch = a
		}
	}
	if err != nil {
		return fmt.Errorf("architecture: %w", err)
	}
	if err := m.detectProfile(cctx); err != nil {
		return err
	}
	if m.bootID, err = m.BootID(cctx); err != nil {
		return err
	}
	// What the machine logged before this run (kernel messages, SELinux denials) is not the
	// tests' to answer for: each answers for its own time, as on a fresh QEMU machine.
	m.skipBootKernelLog()
	m.log("vm %s: ready over SSH after %.1fs (%s, boot %s)", m.name, time.Since(m.started).Seconds(), m.cfg.Arch.Name, m.bootID)
	return nil
}

// SSHAccess is how to log in to a machine from outside the harness: as an ssh target
// (VMTEST_TARGET, VMTEST_SSH_KEY, VMTEST_SSH_HOST_KEY) or with OpenSSH.
type SSHAccess struct {
	Target      string // ssh://user@host:port
	KeyFile     string // the private key (0600)
	HostKeyLine string // the pinned host key, authorized_keys format
	KnownHosts  string // a known_hosts file holding it
}

// Env is the environment that makes a suite use this machine as its ssh target.
func (a SSHAccess) Env() []string {
	return []string{"VMTEST_TARGET=" + a.Target, "VMTEST_SSH_KEY=" + a.KeyFile, "VMTEST_SSH_HOST_KEY=" + a.HostKeyLine}
}

// WriteSSHAccess writes the machine's login key and known_hosts into dir (which should be
// private: the key logs in) and says how to reach it.
func (m *Machine) WriteSSHAccess(dir string) (SSHAccess, error) {
	if m.userKey == nil || m.userKey.PrivatePEM == "" {
		return SSHAccess{}, fmt.Errorf("the login key of target %s is the user's own (%s)", m.cfg.Target, m.cfg.Target.KeyFile)
	}
	a := SSHAccess{
		Target:      "ssh://" + m.sshCfg.User + "@" + m.sshCfg.Addr,
		KeyFile:     filepath.Join(dir, "id_vmtest"),
		HostKeyLine: m.hostKey.PublicLine,
		KnownHosts:  filepath.Join(dir, "known_hosts"),
	}
	if err := os.WriteFile(a.KeyFile, []byte(m.userKey.PrivatePEM), 0o600); err != nil {
		return a, err
	}
	return a, os.WriteFile(a.KnownHosts, []byte(knownHostsName(m.sshCfg.Addr)+" "+a.HostKeyLine+"\n"), 0o644)
}

// What only a QEMU machine has, read safely on any target: channels that never fire, no lines.
func (m *Machine) qemuExited() <-chan struct{} {
	if m.inst == nil {
		return nil
	}
	return m.inst.Exited()
}

func (m *Machine) guestPanicked() <-chan struct{} {
	if m.inst == nil {
		return nil
	}
	return m.inst.QMP.Panicked()
}

func (m *Machine) consoleFatal() <-chan struct{} {
	if m.console == nil {
		return nil
	}
	return m.console.Fatal()
}

func (m *Machine) consoleLen() int {
	if m.console == nil {
		return 0
	}
	return m.console.Len()
}

func (m *Machine) consoleLines(from int) []console.Line {
	if m.console == nil {
		return nil
	}
	return m.console.Lines(from)
}

func (m *Machine) consoleTail(n int) string {
	if m.console == nil {
		return "  (no serial console on target " + m.cfg.Target.String() + ")\n"
	}
	return m.console.Tail(n)
}

// Open starts a machine as the environment (VMTEST_*) and opts configure it, without a test:
// for tools. name names its private folder. The caller closes it.
func Open(ctx context.Context, name string, opts ...Option) (*Machine, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&cfg)
	}
	logf := stderrLog
	if cfg.Log != nil {
		logf = cfg.Log
	}
	m, err := start(ctx, cfg, sanitize(name), logf)
	if err != nil && m != nil {
		m.Close()
		m = nil
	}
	return m, err
}

// ConsoleLog is the file the serial console is recorded to ("" on a target without one). It
// lives in the machine's private folder: gone once the machine is closed.
func (m *Machine) ConsoleLog() string {
	if m.console == nil {
		return ""
	}
	return filepath.Join(m.dir, "console.log")
}
