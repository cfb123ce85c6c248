package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A process that waits for nothing gets its bound in wall time: a hang is still caught at d.
func TestUnitOwnTimeBoundIdleProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start := time.Now()
	ctx, cancel := ownTimeBound(context.Background(), 1500*time.Millisecond, cmd.Process.Pid)
	defer cancel()
	child, cancelChild := context.WithTimeout(ctx, time.Hour)
	defer cancelChild()
	<-child.Done()
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 1500*time.Millisecond)
	assert.Less(t, took, 5*time.Second, "an idle process is not stretched (three readings a second past the bound)")
	assert.Equal(t, context.DeadlineExceeded, ctx.Err(), "a bound that ran out reads as a deadline")
	assert.Equal(t, context.DeadlineExceeded, child.Err(), "and so in contexts derived from it")
	err := boundCause(ctx, errors.New("waiting for cloud-init: context deadline exceeded"))
	assert.Regexp(t, `waiting for cloud-init: context deadline exceeded \(the boot's bound of 1.5s of the guest's own time ran out after \d+s of wall time, 0s of which QEMU waited for a host CPU \(VMTEST_BOOT_TIMEOUT\)\)`, err.Error())
	assert.NoError(t, boundCause(ctx, nil))
}

// A process starved of CPU (pinned to one core with three busy loops) gets more wall time, up to
// StarvedBoundFactor times the bound, and the cause says so.
func TestUnitOwnTimeBoundStarvedProcess(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("needs taskset (util-linux) to pin processes to one core")
	}
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/schedstat"); err != nil {
		t.Skip("needs /proc/PID/task/TID/schedstat (a kernel with CONFIG_SCHED_INFO)")
	}
	var procs []*exec.Cmd
	for range 4 {
		c := exec.Command("taskset", "-c", "0", "sh", "-c", "while :; do :; done")
		require.NoError(t, c.Start())
		procs = append(procs, c)
	}
	t.Cleanup(func() {
		for _, c := range procs {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	time.Sleep(200 * time.Millisecond) // taskset has exec'ed sh
	start := time.Now()
	d := 2 * time.Second // an idle process runs out after about d+2s (three readings), the cap is 3d
	ctx, cancel := ownTimeBound(context.Background(), d, procs[0].Process.Pid)
	defer cancel()
	<-ctx.Done()
	took := time.Since(start)
	assert.Greater(t, took, d+3*time.Second, "a process waiting for a CPU most of the time gets more wall time than an idle one")
	assert.Less(t, took, StarvedBoundFactor*d+time.Second, "but no more than the cap")
	assert.Equal(t, context.DeadlineExceeded, ctx.Err())
	assert.Regexp(t, `QEMU waited for a host CPU|reached its cap`, boundCause(ctx, errors.New("x")).Error())
}

// An ended bound is not a timeout: cancel() leaves Err as Canceled.
func TestUnitOwnTimeBoundCancelled(t *testing.T) {
	ctx, cancel := ownTimeBound(context.Background(), time.Hour, os.Getpid())
	cancel()
	assert.Equal(t, context.Canceled, ctx.Err())
	assert.NoError(t, boundCause(ctx, nil))
	assert.EqualError(t, boundCause(ctx, errors.New("x")), "x")
}
