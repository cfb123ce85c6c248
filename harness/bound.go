package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StarvedBoundFactor caps how far bootBound stretches a bound: at most this many times the
// bound in wall time, however long QEMU waited for a CPU.
const StarvedBoundFactor = 3

// bootBound is ctx bounded by d of the guest's own time: the wall time since now less the time
// QEMU's busiest thread waited for a host CPU (the run delay in /proc/PID/task/TID/schedstat),
// and by StarvedBoundFactor×d of wall time. Under TCG a boot is CPU-bound: on a host running
// other VMs its wall time says how busy the host is more than whether the guest hangs (make
// test, 2026-12-02: a boot that needs a minute on a quiet machine reached SSH after 253 s, and
// its 6-minute bound ran out in cloud-init). A guest that hangs still runs out of d: waiting
// for nothing is not waiting for a CPU. When the bound runs out, ctx's Err is
// context.DeadlineExceeded and boundCause adds to an error how the time went (context.Cause
// does not: it reads the parent's).
func (m *Machine) bootBound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if m.inst == nil {
		return context.WithTimeout(ctx, d)
	}
	return ownTimeBound(ctx, d, m.inst.Pid())
}

// ownTimeBound is bootBound for process pid.
func ownTimeBound(ctx context.Context, d time.Duration, pid int) (context.Context, context.CancelFunc) {
	hard, cancelHard := context.WithTimeoutCause(ctx, StarvedBoundFactor*d, boundError(fmt.Sprintf(
		"the boot's bound of %s of the guest's own time, stretched while QEMU waited for a host CPU, reached its cap of %s of wall time (VMTEST_BOOT_TIMEOUT)", d, StarvedBoundFactor*d)))
	c := &ownTimeCtx{Context: hard, done: make(chan struct{}), stop: make(chan struct{})}
	start, base := time.Now(), runDelays(pid)
	go func() {
		defer cancelHard()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		over := 0 // consecutive readings past the bound
		for {
			select {
			case <-c.stop:
				c.end(context.Canceled, nil)
				return
			case <-hard.Done():
				c.end(hard.Err(), context.Cause(hard))
				return
			case <-tick.C:
			}
			wall := time.Since(start)
			waited := maxDelta(base, runDelays(pid))
			// A thread's run delay is added when it next runs: one that waits for a CPU
			// right now reads as if it had not waited. Past the bound three readings in a
			// row, the reading is the guest's own time.
			if wall-waited <= d {
				over = 0
				continue
			}
			if over++; over >= 3 {
				c.end(context.DeadlineExceeded, boundError(fmt.Sprintf("the boot's bound of %s of the guest's own time ran out after %s of wall time, %s of which QEMU waited for a host CPU (VMTEST_BOOT_TIMEOUT)",
					d, wall.Round(time.Second), waited.Round(time.Second))))
				return
			}
		}
	}()
	var once sync.Once
	return c, func() { once.Do(func() { c.end(context.Canceled, nil); close(c.stop) }) }
}

// ownTimeCtx is a context whose end ownTimeBound's watcher decides. Its values and its
// deadline (the wall-time cap) are its parent's. It is not a context package cancelCtx, so
// contexts derived from it take their Err from its Err (a bound that ran out reads as
// context.DeadlineExceeded, as a deadline would).
type ownTimeCtx struct {
	context.Context
	done, stop chan struct{}
	mu         sync.Mutex
	err, cause error
}

func (c *ownTimeCtx) Done() <-chan struct{} { return c.done }

func (c *ownTimeCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *ownTimeCtx) end(err, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err, c.cause = err, cause
		close(c.done)
	}
}

// boundError is why an ownTimeCtx ended on a bound; it is a deadline (errors.Is
// DeadlineExceeded).
type boundError string

func (e boundError) Error() string        { return string(e) }
func (e boundError) Is(target error) bool { return target == context.DeadlineExceeded }

// boundCause adds to err how a bootBound context's time went, when its bound ran out.
func boundCause(ctx context.Context, err error) error {
	c, ok := ctx.(*ownTimeCtx)
	if err == nil || !ok {
		return err
	}
	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	if b, ok := cause.(boundError); ok {
		return fmt.Errorf("%w (%s)", err, b)
	}
	return err
}

// runDelays is each thread's time spent waiting on a run queue (schedstat's second field), by
// thread ID; empty where the kernel does not keep it.
func runDelays(pid int) map[string]time.Duration {
	out := map[string]time.Duration{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			out[filepath.Base(filepath.Dir(p))] = time.Duration(ns)
		}
	}
	return out
}

// maxDelta is the largest growth of one thread's run delay from before to now (a thread that
// started since counts from zero).
func maxDelta(before, now map[string]time.Duration) time.Duration {
	var m time.Duration
	for tid, d := range now {
		m = max(m, d-before[tid])
	}
	return m
}
