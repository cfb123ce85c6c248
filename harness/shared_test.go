package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
)

// TestSharedVMLendsItsSlotBetweenTests: a shared VM that no test uses lends its host slot to
// the package's next VM, and so does one a test only read the profile from; the harness's next
// request to the guest (wake) gives it a slot again, here the host's other one. Its broken
// answer: while a test has it run something, its slot is not lent.
func TestSharedVMLendsItsSlotBetweenTests(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("VMTEST_CACHE", cacheDir)
	t.Setenv("VMTEST_MAX_VMS", "2")
	ctx := context.Background()
	var log strings.Builder
	m := &Machine{name: "shared-pkg", logf: func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }}
	var err error
	m.slot, err = slots.Acquire(ctx, 1000, t.Logf)
	require.NoError(t, err)
	defer m.slot.Release()
	s := &Shared{m: m}
	quick := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	acquire := func() (*slots.Grant, string) {
		var l strings.Builder
		g, err := slots.Acquire(quick(), 300, func(f string, a ...any) { fmt.Fprintf(&l, f+"\n", a...) })
		require.NoError(t, err)
		return g, l.String()
	}

	s.use() // a test that runs something on it
	require.NoError(t, m.wake())
	own, said := acquire()
	assert.NotContains(t, said, "runs on the VM slot of", "the shared VM is in use: its slot is not lent")
	assert.False(t, own.OverBudget(), "the host's other slot")
	own.Release()
	s.unuse()

	s.use() // a test that reads only the profile from it
	own, said = acquire()
	assert.Contains(t, said, "runs on the VM slot of 1 idle VM(s)", "the shared VM runs nothing: its slot is lent")
	assert.ElementsMatch(t, []string{"1300"}, slotMemory(t, cacheDir), "one slot for both VMs")
	require.NoError(t, m.wake(), "the harness asks the guest something: it takes a slot again")
	assert.False(t, m.slot.OverBudget(), "the host's other slot")
	assert.False(t, own.OverBudget())
	assert.ElementsMatch(t, []string{"1000", "300"}, slotMemory(t, cacheDir), "a slot each")
	own.Release()
	s.unuse()
}

// slotMemory is what the held VM slot files in the cache folder say of their VMs' memory (MiB).
func slotMemory(t *testing.T, cacheDir string) []string {
	files, err := filepath.Glob(filepath.Join(cacheDir, "slots", "vm-*"))
	require.NoError(t, err)
	var mem []string
	for _, f := range files {
		l, free, err := cache.TryLock(f)
		require.NoError(t, err)
		if free {
			l.Unlock()
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if fields := strings.Fields(string(b)); len(fields) == 2 {
			mem = append(mem, fields[1])
		}
	}
	return mem
}
