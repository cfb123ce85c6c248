package trustedlaunch

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Three VMs, each started only when a test asks for it: one restored from the saved state as
// every suite's (no TPM, Secure Boot off: the firmware does not check), and the Trusted Launch
// VM, with a TPM 2.0 and, where the profile promises Secure Boot (secureboot.enabled), Secure
// Boot firmware with Microsoft's keys (secure); without it, the plain firmware (bare). The
// plain VM's profile tells which. The Trusted Launch VM is restored too, from a saved state of
// its own configuration (built by one real boot under that firmware, with the TPM's state in
// it): an image whose chain the firmware refuses fails that boot.
var (
	plain  = harness.NewShared()
	secure = harness.NewShared(harness.WithTPM(), harness.WithSecureBoot())
	bare   = harness.NewShared(harness.WithTPM())
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m, plain, secure, bare)) }

// secureBootPromised says whether the image promises to boot under Secure Boot.
func secureBootPromised(t *testing.T) bool {
	on, err := profile.Get[bool](plain.Machine(t).Profile(), "secureboot.enabled")
	return err == nil && on
}

// vm is the package's Trusted Launch machine: with Secure Boot where the image promises it,
// without where it promises Secure Boot off (then it must read off) or promises nothing (an
// image that would not start under Secure Boot firmware, as the 4.0 preview's unsigned chain:
// the Secure Boot rows skip with the profile's reason, the TPM's still run).
func vm(t *testing.T) *harness.Machine {
	if secureBootPromised(t) {
		return secure.Machine(t)
	}
	return bare.Machine(t)
}

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm(t), Checks) }

// TestTPMAnswersCommands: the TPM answers TPM2_GetRandom through the resource manager with
// fresh random bytes each time (the helper speaks the TPM 2.0 wire protocol: no tpm2-tools
// needed in the guest).
func TestTPMAnswersCommands(t *testing.T) {
	m := vm(t)
	harness.Want[int](t, m, "tpm.version_major")
	cmd := "sudo " + m.InstallProbe(t) + " tpm-random 16"
	require.NoError(t, Random(16, m.MustRun(t, cmd), m.MustRun(t, cmd)))
}

// candidateModules are small modules no test VM has loaded and every kernel config that
// suites/hardening accepts builds as modules; the first the image has is used.
var candidateModules = []string{"dummy", "veth", "ifb", "vcan"}

// TestUnsignedModuleRefused: the kernel refuses a module whose signature was stripped when it
// runs under Secure Boot, and the same unsigned file loads on the plain VM (so it is a good
// module, refused for its signature only), as does the signed original under Secure Boot (so
// module loading itself works).
func TestUnsignedModuleRefused(t *testing.T) {
	m := plain.Machine(t)
	m.Require(t, harness.PowerVirtHardware)
	refused := harness.Want[bool](t, m, "secureboot.unsigned_module_refused")
	if !secureBootPromised(t) {
		t.Skipf("needs an image that boots under Secure Boot: profile %s says secureboot.enabled is not true", m.Profile().Name)
	}
	mod, path := pickModule(t, m)
	raw, err := base64.StdEncoding.DecodeString(m.MustRun(t, `f=`+path+`; case $f in *.xz) xz -dc $f;; *.zst) zstd -dc $f;; *.gz) zcat $f;; *) cat $f;; esac | base64 -w0`))
	require.NoError(t, err, "module %s from the guest", path)
	unsigned, err := StripSignature(raw)
	require.NoError(t, err, "module %s (%s)", mod, path)
	local := filepath.Join(t.TempDir(), "unsigned.ko")
	require.NoError(t, os.WriteFile(local, unsigned, 0o644))
	const remote = "/tmp/vmtest-unsigned.ko"
	// Under SELinux insmod (kmod_t) reads only module files: label the copy as one.
	label := "sudo chcon -t modules_object_t " + remote + " 2>/dev/null; true"
	try := loadCmd("sudo insmod "+remote, mod)

	// Without Secure Boot the unsigned file loads, unless that kernel enforces signatures anyway.
	require.NoError(t, m.CopyTo(t.Context(), local, remote, "0644"))
	m.MustRun(t, label)
	if enforce, _ := m.Output(t, "cat /sys/module/module/parameters/sig_enforce"); strings.TrimSpace(enforce) == "Y" {
		t.Logf("the plain VM enforces module signatures too (sig_enforce=Y): the unsigned module is not tried there")
	} else {
		out, _ := m.Output(t, try)
		require.NoError(t, ModuleLoad("unsigned "+mod+" without Secure Boot (the stripped file must be a loadable module)", false, out))
	}

	s := secure.Machine(t)
	require.NoError(t, s.CopyTo(t.Context(), local, remote, "0644"))
	s.MustRun(t, label)
	out, _ := s.Output(t, try)
	require.NoError(t, ModuleLoad("unsigned "+mod+" under Secure Boot", refused, out))
	out, _ = s.Output(t, loadCmd("sudo modprobe "+mod, mod))
	require.NoError(t, ModuleLoad("signed "+mod+" under Secure Boot (modprobe)", false, out))
}

// loadCmd runs load (insmod or modprobe), prints what ModuleLoad reads (its exit code and how
// often mod is then in /proc/modules) and unloads mod again.
func loadCmd(load, mod string) string {
	return load + " 2>&1; echo insmod_exit=$?; echo loaded=$(grep -c '^" + mod + " ' /proc/modules); sudo rmmod " + mod + " 2>/dev/null; true"
}

// pickModule finds the first candidate module the image has as a file and has not loaded.
func pickModule(t *testing.T, m *harness.Machine) (name, path string) {
	out, _ := m.Output(t, `for mod in `+strings.Join(candidateModules, " ")+`; do p=$(modinfo -n $mod 2>/dev/null) || continue; [ -f "$p" ] && ! grep -q "^$mod " /proc/modules && { echo "$mod $p"; break; }; done`)
	name, path, ok := strings.Cut(strings.TrimSpace(out), " ")
	require.True(t, ok, "a loadable module to strip: expected one of %v as a module file, not loaded, got none", candidateModules)
	return name, path
}
