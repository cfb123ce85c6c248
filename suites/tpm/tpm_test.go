package tpm

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// The VM with a TPM 2.0 (swtpm) boots as Azure's Trusted Launch does: with Secure Boot on where
// the image promises it (secureboot.enabled), which the restored plain VM's profile tells before
// that boot. It boots for real: a saved state would not carry the TPM's.
var (
	plain  = harness.NewShared()
	secure = harness.NewShared(harness.WithTPM(), harness.WithSecureBoot())
	bare   = harness.NewShared(harness.WithTPM())
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m, plain, secure, bare)) }

// vm is the package's TPM machine.
func vm(t *testing.T) *harness.Machine {
	if on, err := profile.Get[bool](plain.Machine(t).Profile(), "secureboot.enabled"); err == nil && on {
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
