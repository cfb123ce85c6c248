package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// Every option that changes what the guest is at "ready" makes a saved state of its own; an
// option that only changes how the harness waits or judges shares the state.
func TestOptionsAndSavedStateKeys(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	disk := make([]byte, 1<<20)
	disk[510], disk[511] = 0x55, 0xaa // an MBR signature: Inspect takes it for a disk
	require.NoError(t, os.WriteFile(img, disk, 0o644))
	t.Setenv("VMTEST_IMAGE", img)
	t.Setenv("VMTEST_ACCEL", "tcg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := func(opts ...Option) string {
		k, err := StateKey(ctx, opts...)
		require.NoError(t, err)
		return k
	}
	base := key()
	assert.Equal(t, base, key(), "the key is stable")
	seen := map[string]string{base: "no option"}
	for name, o := range map[string]Option{
		"WithCPUs":          WithCPUs(3),
		"WithMemory":        WithMemory(DefaultMemoryMB + 512), // any size but the default
		"WithWriteFiles":    WithWriteFiles(cloudinit.File{Path: "/etc/x", Content: "y"}),
		"WithRunCmd":        WithRunCmd("touch /x"),
		"WithBootCmd":       WithBootCmd("touch /y"),
		"WithUserData":      WithUserData("timezone", "UTC"),
		"WithNetworkConfig": WithNetworkConfig("version: 2\n"),
		"WithNetOpen":       WithNetOpen(),
		// The TPM's state travels in the saved memory, in swtpm's format; Secure Boot is
		// other firmware (on aarch64 other variables only).
		"WithTPM":        WithTPM(),
		"WithSecureBoot": WithSecureBoot(),
	} {
		k := key(o)
		assert.NotContains(t, seen, k, "%s must make its own saved state (same key as %s)", name, seen[k])
		seen[k] = name
	}
	for name, o := range map[string]Option{
		"WithBootTimeout":  WithBootTimeout(time.Minute),
		"WithAllowConsole": WithAllowConsole("segfault"),
	} {
		assert.Equal(t, base, key(o), "%s changes no guest: it shares the saved state", name)
	}
}

func TestDefaultCPUsFollowTheAccelerator(t *testing.T) {
	t.Setenv("VMTEST_CPUS", "")
	c, err := ConfigFromEnv()
	require.NoError(t, err)
	assert.Zero(t, c.CPUs, "without VMTEST_CPUS the count is chosen once the accelerator is known")
	assert.Equal(t, 2, DefaultCPUs(qemu.AccelKVM))
	assert.Equal(t, 1, DefaultCPUs(qemu.AccelTCG))
	t.Setenv("VMTEST_CPUS", "3")
	c, err = ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, 3, c.CPUs)
}
