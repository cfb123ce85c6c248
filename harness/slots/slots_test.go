package slots

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

func setup(t *testing.T, vms int) {
	t.Setenv("VMTEST_CACHE", t.TempDir())
	t.Setenv("VMTEST_MAX_VMS", fmt.Sprint(vms))
}

// TestVMWaitsForAnotherProcesssSlot: a child process holds the only slot; this process
// waits, says so, and gets the slot as soon as the child exits.
func TestVMWaitsForAnotherProcesssSlot(t *testing.T) {
	setup(t, 1)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperHoldSlot$")
	child.Env = append(os.Environ(), "SLOTS_HELPER=1")
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)

	var log strings.Builder
	done := make(chan time.Time, 1)
	go func() {
		g, err := Acquire(context.Background(), 512, func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) })
		if err == nil && g.lock != nil {
			g.Release()
			done <- time.Now()
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("got a slot the other process holds")
	case <-time.After(time.Second):
	}
	killed := time.Now()
	require.NoError(t, child.Process.Kill())
	_ = child.Wait()
	got, ok := <-done
	require.True(t, ok, "no slot after the holder died")
	assert.Less(t, got.Sub(killed), 2*time.Second)
	assert.Contains(t, log.String(), "waiting for a VM slot: 1 of 1 VMs")
}

// TestHelperHoldSlot is TestVMWaitsForAnotherProcesssSlot's child.
func TestHelperHoldSlot(t *testing.T) {
	if os.Getenv("SLOTS_HELPER") != "1" {
		t.Skip("helper for TestVMWaitsForAnotherProcesssSlot (runs only as its child)")
	}
	g, err := Acquire(context.Background(), 512, t.Logf)
	require.NoError(t, err)
	defer g.Release()
	fmt.Println("holding")
	time.Sleep(time.Minute)
}

func TestOneProcessNeverDeadlocksItself(t *testing.T) {
	setup(t, 1)
	g1, err := Acquire(context.Background(), 1024, t.Logf)
	require.NoError(t, err)
	defer g1.Release()
	var log strings.Builder
	start := time.Now()
	g2, err := Acquire(context.Background(), 1024, func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) })
	require.NoError(t, err)
	assert.Nil(t, g2.lock, "started over the budget")
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Contains(t, log.String(), "waiting for a VM slot: 1 of 1 VMs")
	assert.Contains(t, log.String(), "over the budget rather than deadlocking")
}

func TestMemoryBudget(t *testing.T) {
	setup(t, 4)
	b, err := HostBudget()
	require.NoError(t, err)
	g1, err := Acquire(context.Background(), b.MemoryMB-100, t.Logf)
	require.NoError(t, err)
	g, used, usedMB, err := try(mustSub(t), b, 200)
	require.NoError(t, err)
	assert.Nil(t, g, "a VM that does not fit the memory left waits")
	assert.Equal(t, 1, used)
	assert.Equal(t, b.MemoryMB-100, usedMB)
	g1.Release()
	g, _, _, err = try(mustSub(t), b, 200)
	require.NoError(t, err)
	require.NotNil(t, g)
	g.Release()
}

func TestWaitEndsWithContext(t *testing.T) {
	setup(t, 1)
	// A slot held by "another process": a slot file locked through another descriptor with a
	// foreign PID written in it, and no waiting marker for that PID.
	g1, err := Acquire(context.Background(), 512, t.Logf)
	require.NoError(t, err)
	defer g1.Release()
	mu.Lock()
	held = 0 // this process now looks like it holds nothing: it must wait, not bypass
	mu.Unlock()
	defer func() { mu.Lock(); held = 1; mu.Unlock() }()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Acquire(ctx, 512, t.Logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "waiting for a VM slot (1 VMs")
}

func TestBadMaxVMs(t *testing.T) {
	t.Setenv("VMTEST_MAX_VMS", "0")
	_, err := HostBudget()
	assert.ErrorContains(t, err, "VMTEST_MAX_VMS")
}

func mustSub(t *testing.T) string {
	d, err := cache.Sub("slots")
	require.NoError(t, err)
	return d
}

func TestBootsOneHostCorePerBootVCPU(t *testing.T) {
	t.Setenv("VMTEST_MAX_BOOTS", "")
	n := runtime.NumCPU()
	assert.Equal(t, n, Boots(1), "one-vCPU guests: one boot per core")
	assert.Equal(t, max(1, n/2), Boots(2))
	assert.Equal(t, 1, Boots(4*n), "never less than one")
	t.Setenv("VMTEST_MAX_BOOTS", "3")
	assert.Equal(t, 3, Boots(2))
}
