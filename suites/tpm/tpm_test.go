package tpm

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// One VM with a TPM 2.0 (swtpm). It boots for real: a saved state would not carry the TPM's.
var vm = harness.NewShared(harness.WithTPM())

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestTPMAnswersCommands: the TPM answers TPM2_GetRandom through the resource manager with
// fresh random bytes each time (the helper speaks the TPM 2.0 wire protocol: no tpm2-tools
// needed in the guest).
func TestTPMAnswersCommands(t *testing.T) {
	m := vm.Machine(t)
	harness.Want[int](t, m, "tpm.version_major")
	cmd := "sudo " + m.InstallProbe(t) + " tpm-random 16"
	require.NoError(t, Random(16, m.MustRun(t, cmd), m.MustRun(t, cmd)))
}
