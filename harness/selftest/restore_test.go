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

// TestSavedStateKeyAndIntegrity: another memory size is another saved state; a machine that
// boots for real saves the state of its configuration on the way and keeps running on a disk of
// its own; and a state damaged as a disk or a killed writer would (bytes changed) is noticed
// before use, reported and rebuilt, never half-loaded. (Truncation and every other input are
// unit-tested in harness/savedstate.) The 1536 MiB state is this test's own, so no other
// test's state is touched.
func TestSavedStateKeyAndIntegrity(t *testing.T) {
	small := harness.WithMemory(1536)
	root, err := savedstate.Root()
	require.NoError(t, err)
	def := harness.Boot(t)
	kd, _ := def.Restored()
	require.NotEmpty(t, kd)
	def.Close()

	// Start from no state for 1536 MiB: the fresh boot saves it on the way.
	key, err := harness.StateKey(t.Context(), small)
	require.NoError(t, err)
	require.NotEqual(t, kd, key, "another memory size must make another saved state")
	require.NoError(t, savedstate.Remove(root, key))

	donor := harness.Boot(t, small, harness.WithFreshBoot())
	_, restored := donor.Restored()
	require.False(t, restored, "WithFreshBoot boots")
	_, err = savedstate.Open(root, key)
	require.NoError(t, err, "the fresh boot saved its state on the way")
	donor.MustRun(t, "echo donor | sudo tee /var/tmp/vmtest-donor >/dev/null && sync")

	m := harness.Boot(t, small)
	k, ok := m.Restored()
	require.True(t, ok)
	assert.Equal(t, key, k)
	_, code := m.Output(t, "test -e /var/tmp/vmtest-donor")
	assert.Equal(t, 1, code, "what the donor wrote after the save is on its own disk only")
	assert.Equal(t, "donor", donor.MustRun(t, "cat /var/tmp/vmtest-donor"), "the donor keeps working after the save")
	kib, err := strconv.Atoi(m.MustRun(t, "awk '/MemTotal/{print $2}' /proc/meminfo"))
	require.NoError(t, err)
	assert.Less(t, kib, 1536*1024, "the VM restored for 1536 MiB must have at most 1536 MiB")
	assert.Greater(t, kib, 1200*1024)
	donor.Close()
	m.Close()

	mem := filepath.Join(root, key, savedstate.MemoryFile)
	var again *harness.Machine
	f, err := os.OpenFile(mem, os.O_RDWR, 0)
	require.NoError(t, err)
	st, err := f.Stat()
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("azl-vmtest was here"), st.Size()/2)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	var log strings.Builder
	again, err = harness.Start(t.Context(), "corrupt-state", func(f string, a ...any) {
		fmt.Fprintf(&log, f+"\n", a...)
		t.Logf(f, a...)
	}, small)
	require.NoError(t, err)
	defer again.Close()
	assert.Contains(t, log.String(), "the saved state is unusable, rebuilding it")
	assert.Contains(t, log.String(), "memory.state has SHA-256")
	assert.Contains(t, log.String(), "no saved booted state for this configuration: booting one to save")
	k, ok = again.Restored()
	assert.True(t, ok)
	assert.Equal(t, key, k)
	assert.Equal(t, "azlvmtest", again.MustRun(t, "id -un"))
}
