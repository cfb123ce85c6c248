package selftest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
)

// TestRestoredVMsAreIndependent restores two VMs from one saved state at the same time: each
// has its own disk (a file written in one is absent in the other), its own marker, the host's
// clock, and answers within seconds of QEMU's start.
func TestRestoredVMsAreIndependent(t *testing.T) {
	a := harness.Boot(t)
	b := harness.Boot(t)
	ka, ok := a.Restored()
	require.True(t, ok, "the default is to restore a saved booted state")
	kb, _ := b.Restored()
	assert.Equal(t, ka, kb, "one configuration, one saved state")
	t.Logf("restore stages: %s / %s", a.Stages, b.Stages)

	assert.NotEqual(t, a.InstanceID(), b.InstanceID())
	assert.Equal(t, a.InstanceID(), a.MustRun(t, "cat /run/azl-vmtest/instance-id"))
	assert.Equal(t, b.InstanceID(), b.MustRun(t, "cat /run/azl-vmtest/instance-id"))

	a.MustRun(t, "echo only-in-a | sudo tee /var/tmp/vmtest-independent >/dev/null && sync")
	_, code := b.Output(t, "test -e /var/tmp/vmtest-independent")
	assert.Equal(t, 1, code, "a file written in one restored VM must not appear in another")

	for _, m := range []*harness.Machine{a, b} {
		guest, err := strconv.ParseInt(m.MustRun(t, "date +%s"), 10, 64)
		require.NoError(t, err)
		assert.InDelta(t, time.Now().Unix(), guest, 5, "the restored guest's clock must be the host's")
	}
}

// TestChangedInputMakesNewState: another memory size is another saved state.
func TestChangedInputMakesNewState(t *testing.T) {
	a := harness.Boot(t)
	b := harness.Boot(t, harness.WithMemory(1536))
	ka, _ := a.Restored()
	kb, _ := b.Restored()
	require.NotEmpty(t, ka)
	require.NotEmpty(t, kb)
	assert.NotEqual(t, ka, kb)
	mem := b.MustRun(t, "awk '/MemTotal/{print $2}' /proc/meminfo")
	kib, err := strconv.Atoi(mem)
	require.NoError(t, err)
	assert.Less(t, kib, 1536*1024, "the VM restored for 1536 MiB must have at most 1536 MiB")
	assert.Greater(t, kib, 1200*1024)
}

// TestCorruptSavedStateIsRebuilt damages a saved state in the two ways a disk or a killed
// writer does (bytes changed, file truncated): the next start must notice before using it, say
// so, and rebuild it rather than run a half-loaded guest. It uses a configuration of its own
// (an extra runcmd) so that no other test's state is touched.
func TestCorruptSavedStateIsRebuilt(t *testing.T) {
	own := harness.WithRunCmd("echo corrupt-state-selftest > /var/tmp/vmtest-own-state")
	m := harness.Boot(t, own)
	key, ok := m.Restored()
	require.True(t, ok)
	m.Close()
	root, err := savedstate.Root()
	require.NoError(t, err)
	mem := filepath.Join(root, key, savedstate.MemoryFile)

	damage := map[string]func(){
		"bytes changed": func() {
			f, err := os.OpenFile(mem, os.O_RDWR, 0)
			require.NoError(t, err)
			st, _ := f.Stat()
			_, err = f.WriteAt([]byte("azl-vmtest was here"), st.Size()/2)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		},
		"truncated": func() {
			st, err := os.Stat(mem)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(mem, st.Size()/3))
		},
	}
	for _, name := range []string{"bytes changed", "truncated"} {
		t.Run(name, func(t *testing.T) {
			damage[name]()
			var log strings.Builder
			m, err := harness.Start(t.Context(), "corrupt-"+strings.ReplaceAll(name, " ", "-"), func(f string, a ...any) {
				fmt.Fprintf(&log, f+"\n", a...)
				t.Logf(f, a...)
			}, own)
			require.NoError(t, err)
			defer m.Close()
			assert.Contains(t, log.String(), "the saved state is unusable, rebuilding it")
			assert.Contains(t, log.String(), "no saved booted state for this configuration: booting one to save")
			k, ok := m.Restored()
			assert.True(t, ok)
			assert.Equal(t, key, k)
			assert.Equal(t, "corrupt-state-selftest", m.MustRun(t, "cat /var/tmp/vmtest-own-state"))
		})
	}
}
