package slots

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
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
	pid := holdInChild(t, false)

	var log strings.Builder
	done := make(chan time.Time, 1)
	go func() {
		g, err := Acquire(context.Background(), 512, func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) })
		if err == nil && !g.OverBudget() {
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
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	got, ok := <-done
	require.True(t, ok, "no slot after the holder died")
	assert.Less(t, got.Sub(killed), 2*time.Second)
	assert.Contains(t, log.String(), "waiting for a VM slot: 1 of 1 VMs")
}

// TestHelperHoldSlot is the child of the tests that need a slot held by another process.
func TestHelperHoldSlot(t *testing.T) {
	if os.Getenv("SLOTS_HELPER") != "1" {
		t.Skip("helper for TestVMWaitsForAnotherProcesssSlot (runs only as its child)")
	}
	g, err := Acquire(context.Background(), 512, t.Logf)
	require.NoError(t, err)
	defer g.Release()
	if os.Getenv("SLOTS_HELPER_KEEP") == "true" {
		defer KeptForPerson()()
	}
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
	assert.True(t, g2.OverBudget(), "started over the budget")
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
	g := &Grant{memMB: 200}
	placed, _, used, usedMB, err := placeNow(mustSub(t), b, g)
	require.NoError(t, err)
	assert.False(t, placed, "a VM that does not fit the memory left waits")
	assert.Equal(t, 1, used)
	assert.Equal(t, b.MemoryMB-100, usedMB)
	g1.Idle()
	placed, _, _, _, err = placeNow(mustSub(t), b, g)
	require.NoError(t, err)
	assert.False(t, placed, "nor does it fit on an idle VM's slot: that VM's memory is in use")
	g1.Release()
	placed, _, _, _, err = placeNow(mustSub(t), b, g)
	require.NoError(t, err)
	require.True(t, placed)
	g.Release()
}

// holdInChild starts a child process that takes one VM slot (and, with keep, marks itself as
// keeping that VM for a person, as vmtest spawn does) and returns its PID once it holds it.
func holdInChild(t *testing.T, keep bool) int {
	child := exec.Command(os.Args[0], "-test.run=^TestHelperHoldSlot$")
	child.Env = append(os.Environ(), "SLOTS_HELPER=1", fmt.Sprintf("SLOTS_HELPER_KEEP=%v", keep))
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)
	return child.Process.Pid
}

func TestWaitEndsWithContext(t *testing.T) {
	setup(t, 1)
	pid := holdInChild(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Acquire(ctx, 512, t.Logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "waiting for a VM slot (1 VMs")
	assert.Contains(t, err.Error(), fmt.Sprintf("holders: pid %d running", pid), "names who holds the slot")
}

// TestSlotKeptForPersonCountsAsBlocked: two slots, one held by a process that keeps its VM
// for a person, the other by this process; this process's next VM starts over the budget at
// once instead of waiting for the person. Its broken answer: the same with a holder that is
// running (it frees its slot by itself), where this process waits.
func TestSlotKeptForPersonCountsAsBlocked(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("kept=%v", keep), func(t *testing.T) {
			setup(t, 2)
			pid := holdInChild(t, keep)
			g1, err := Acquire(context.Background(), 512, t.Logf)
			require.NoError(t, err)
			defer g1.Release()
			require.False(t, g1.OverBudget(), "the second slot is free")
			var log strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			g2, err := Acquire(ctx, 512, func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) })
			if !keep {
				require.Error(t, err, "a running holder frees its slot by itself: wait for it")
				assert.Contains(t, err.Error(), fmt.Sprintf("pid %d running", pid))
				return
			}
			require.NoError(t, err)
			assert.True(t, g2.OverBudget(), "started over the budget")
			assert.Less(t, time.Since(start), 2*time.Second)
			assert.Contains(t, log.String(), "over the budget rather than deadlocking")
		})
	}
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

// TestMarkerCountsEveryWaiter: the process's marker says what its goroutines wait for, a slot
// first, and stays until the last of them is done (one ending does not unmark the others).
func TestMarkerCountsEveryWaiter(t *testing.T) {
	setup(t, 1)
	says := func() string {
		what, err := Marker(os.Getpid())
		if err != nil {
			return "(none)"
		}
		return what
	}
	kept := KeptForPerson()
	assert.Equal(t, "person", says())
	a, b := Blocked(), Blocked()
	assert.Equal(t, "other", says())
	slot := wait("slot")
	assert.Equal(t, "slot", says())
	slot()
	slot() // twice: counted once
	assert.Equal(t, "other", says())
	a()
	assert.Equal(t, "other", says(), "another goroutine still waits")
	b()
	assert.Equal(t, "person", says())
	kept()
	assert.Equal(t, "(none)", says())
}

// slotFile says what the slot file vm-i records ("<pid> <MiB>") and whether a process holds it.
func slotFile(t *testing.T, i int) (string, bool) {
	p := fmt.Sprintf("%s/vm-%d", mustSub(t), i)
	l, free, err := cache.TryLock(p)
	require.NoError(t, err)
	if free {
		l.Unlock()
		return "", false
	}
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return strings.TrimSpace(string(b)), true
}

// TestIdleVMLendsItsSlot: two slots, one held by another process that runs its VM, one by this
// process's VM, which goes idle. The next VM of this process runs on the idle VM's slot at once
// (its broken answer: while the first VM runs, the same VM waits), the slot carrying both VMs'
// memory. The idle VM then waits to run again while that VM runs, and has its slot back as soon
// as it stops; a lender that stops first leaves its slot to the VM on it.
func TestIdleVMLendsItsSlot(t *testing.T) {
	setup(t, 2)
	holdInChild(t, false)
	pid := os.Getpid()
	quick := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	var log strings.Builder
	logf := func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }

	shared, err := Acquire(context.Background(), 1000, t.Logf)
	require.NoError(t, err)
	defer shared.Release()
	_, err = Acquire(quick(), 300, logf)
	require.Error(t, err, "the shared VM runs: its slot is not lent")
	assert.Contains(t, err.Error(), "waiting for a VM slot (2 VMs")

	shared.Idle()
	own, err := Acquire(quick(), 300, logf)
	require.NoError(t, err, "the shared VM is idle: its slot is lent")
	assert.False(t, own.OverBudget())
	assert.Contains(t, log.String(), "runs on the VM slot of 1 idle VM(s) of this process")
	held, ok := slotFile(t, 1)
	assert.True(t, ok)
	assert.Equal(t, fmt.Sprintf("%d 1300", pid), held, "the slot carries both VMs' memory")

	err = shared.Busy(quick(), logf)
	require.Error(t, err, "the other VM runs on its slot, the host has no other")
	assert.Contains(t, err.Error(), "waiting for a VM slot")
	own.Release()
	require.NoError(t, shared.Busy(quick(), logf), "its slot is its own again")
	assert.False(t, shared.OverBudget())
	held, _ = slotFile(t, 1)
	assert.Equal(t, fmt.Sprintf("%d 1000", pid), held)

	shared.Idle()
	own, err = Acquire(quick(), 300, logf)
	require.NoError(t, err)
	shared.Release()
	held, ok = slotFile(t, 1)
	assert.True(t, ok, "the VM on a stopped VM's slot keeps it")
	assert.Equal(t, fmt.Sprintf("%d 300", pid), held)
	own.Release()
	_, ok = slotFile(t, 1)
	assert.False(t, ok, "freed with the last VM on it")
}

// TestBusyVMTakesAFreeSlot: an idle VM whose slot another VM of this process runs on takes a
// free slot when it runs again, and each slot then carries the memory of its own VM.
func TestBusyVMTakesAFreeSlot(t *testing.T) {
	setup(t, 2)
	pid := os.Getpid()
	shared, err := Acquire(context.Background(), 1000, t.Logf)
	require.NoError(t, err)
	shared.Idle()
	own, err := Acquire(context.Background(), 300, t.Logf)
	require.NoError(t, err)
	held, _ := slotFile(t, 0)
	assert.Equal(t, fmt.Sprintf("%d 1300", pid), held)
	_, ok := slotFile(t, 1)
	assert.False(t, ok, "one slot for both")

	require.NoError(t, shared.Busy(context.Background(), t.Logf))
	assert.False(t, shared.OverBudget())
	held, _ = slotFile(t, 0)
	assert.Equal(t, fmt.Sprintf("%d 300", pid), held)
	held, _ = slotFile(t, 1)
	assert.Equal(t, fmt.Sprintf("%d 1000", pid), held)
	shared.Release()
	own.Release()
	for i := range 2 {
		_, ok := slotFile(t, i)
		assert.False(t, ok, "slot %d freed", i)
	}
}
