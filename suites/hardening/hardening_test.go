package hardening

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
	"github.com/azl-vmtest/azl-vmtest/harness"
)

// One VM for the package: every check here only reads.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// TestABILock: the exported symbols of the profile's Tier-1 libraries (glibc, systemd, OpenSSL)
// are a superset of the release's baseline, fixtures/<profile>/abi/baseline-<arch>.txt. The
// baseline changes only by an explicit command: make abi-baseline (VMTEST_ABI_BASELINE=<folder>
// writes this image's symbols there instead of comparing).
func TestABILock(t *testing.T) {
	m := vm.Machine(t)
	libs := harness.Want[[]string](t, m, "hardening.abi_libraries")
	probe := m.InstallProbe(t)
	out := m.MustRun(t, probe+" abi "+strings.Join(libs, " "))
	rel := path.Join(m.Profile().Name, "abi", "baseline-"+m.Arch().Name+".txt")
	if dir := os.Getenv("VMTEST_ABI_BASELINE"); dir != "" {
		f := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(f), 0o755))
		require.NoError(t, os.WriteFile(f, []byte(out+"\n"), 0o644))
		t.Logf("abi: baseline written to %s (%d lines): commit it to lock this ABI", f, strings.Count(out, "\n"))
		return
	}
	baseline, err := fs.ReadFile(fixtures.FS, rel)
	if err != nil {
		t.Skipf("needs an ABI baseline for %s on %s (fixtures/%s): record one from a known-good image with make abi-baseline", m.Profile().Name, m.Arch().Name, rel)
	}
	added, err := ABI(string(baseline), out)
	if len(added) > 0 {
		t.Logf("abi: %d symbols added since the baseline (allowed): %s", len(added), strings.Join(added[:min(len(added), 20)], ", "))
	}
	require.NoError(t, err)
}
