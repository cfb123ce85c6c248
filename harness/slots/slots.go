// Package slots bounds how many VMs run on this host at once, across every test process (go
// test runs packages in parallel, whatever -p is): a VM takes one of VMTEST_MAX_VMS slots
// (default: two per CPU core) and its memory must fit in the host's memory less a reserve.
// Slots are flock'ed files in the cache folder, so a killed process frees its slots at once.
//
// A process that already holds a slot and waits for another (a test that needs two VMs beside
// its package's shared one) could wait for ever on another such process. Every blocked process
// says so in a flock'ed marker, and so does a process that keeps a VM for a person (vmtest
// spawn), whose slot only the person frees; when every slot holder is blocked, the waiting
// holder with the lowest PID starts its VM over the budget, and says so, instead of deadlocking.
//
// A slot bounds the VMs that run, not the VMs that exist: a VM that is idle for a while (a
// package's shared VM while one of its tests runs a VM of its own) says so (Grant.Idle), and
// this process's next VM runs on that slot instead of waiting for another; the idle VM takes a
// slot again (Grant.Busy) before it runs anything, its own if the other VM has finished. A slot
// carries the memory of every VM on it.
package slots

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// ReserveMB is host memory kept free for the host itself (test binaries, page cache).
const ReserveMB = 2048

// Budget is what the host can hold.
type Budget struct {
	VMs      int // VMs at once
	MemoryMB int // guest memory at once
}

// VMsPerCore is the default number of VMs per host CPU core. A test VM spends most of its life
// idle between commands (a restored one always starts idle; an idle one-vCPU guest costs
// about 1% of a core under TCG): measured here, a budget of one VM per core left the cores
// half idle while packages queued for a slot. Three per core (make test, 2026-12-02) kept
// 7.8 threads waiting for the two cores on average instead of 4.7, for no more work done (the
// run is CPU-bound): a restored VM then took a minute to load and starved past its bound.
// Memory bounds it too: under TCG a VM takes its guest's memory and its code cache
// (qemu.TCGCodeBufferMB).
const VMsPerCore = 2

// HostBudget is VMTEST_MAX_VMS (default: VMsPerCore per CPU core) VMs and MemTotal less
// ReserveMB.
func HostBudget() (Budget, error) {
	b := Budget{VMs: VMsPerCore * runtime.NumCPU(), MemoryMB: MemTotalMB() - ReserveMB}
	if v := os.Getenv("VMTEST_MAX_VMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return b, fmt.Errorf("VMTEST_MAX_VMS=%q: want a positive integer (VMs at once on this host)", v)
		}
		b.VMs = n
	}
	if v := os.Getenv("VMTEST_MAX_BOOTS"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return b, fmt.Errorf("VMTEST_MAX_BOOTS=%q: want a positive integer (VMs booting at once on this host)", v)
		}
	}
	if b.MemoryMB < 512 {
		b.MemoryMB = 512
	}
	return b, nil
}

// MemTotalMB is the host's memory (MemTotal), in MiB.
func MemTotalMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 4096
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb / 1024
		}
	}
	return 4096
}

// Grant is one VM's place on the host (or one boot's).
type Grant struct {
	lock *cache.Lock // a boot slot
	// A VM's (guarded by mu):
	dir   string // the slots folder it was placed in
	s     *slot  // the slot it runs on
	memMB int
	idle  bool // Idle until Busy: another VM of this process may run on its slot meanwhile
}

// slot is a VM slot of this process: the flock'ed file, and the VMs on it, of which at most
// one is not idle.
type slot struct {
	lock *cache.Lock // nil: a VM started over the budget
	path string
	vms  []*Grant
}

// procSlots are this process's VM slots (guarded by mu).
var procSlots []*slot

// Release frees the slot: the VM has stopped. Safe on nil and more than once.
func (g *Grant) Release() {
	if g == nil {
		return
	}
	g.lock.Unlock()
	g.lock = nil
	mu.Lock()
	defer mu.Unlock()
	if g.s != nil {
		if unlock, err := lockFolder(g.dir); err == nil { // else rewritten without it
			defer unlock()
		}
		g.s.leave(g)
		g.s = nil
	}
}

// lockFolder takes the mutex of the slots folder dir, under which slot files are written and
// read (a file read while it is rewritten would count no memory), and returns its release. A
// caller that also holds mu took mu first.
func lockFolder(dir string) (unlock func(), err error) {
	mutex, err := cache.AcquireLock(context.Background(), filepath.Join(dir, "mutex"), nil)
	if err != nil {
		return nil, err
	}
	return mutex.Unlock, nil
}

// Idle says that g's VM runs nothing until Busy (a shared VM between its package's tests, an
// idle guest costing about 1% of a core under TCG): meanwhile another VM of this process may
// run on its slot. Safe on nil.
func (g *Grant) Idle() {
	if g == nil {
		return
	}
	mu.Lock()
	g.idle = true
	mu.Unlock()
}

// Busy ends Idle: g's VM takes a slot to run on again, its own at once unless another VM of
// this process runs there now, else one as Acquire finds it (log is told if it waits). Safe on
// nil.
func (g *Grant) Busy(ctx context.Context, log func(string, ...any)) error {
	if g == nil {
		return nil
	}
	mu.Lock()
	if !g.idle {
		mu.Unlock()
		return nil
	}
	g.idle = false // no other VM joins its slot while it waits for one
	mu.Unlock()
	return place(ctx, g, log)
}

// OverBudget reports whether g's VM was started over the budget (see the package comment).
func (g *Grant) OverBudget() bool {
	mu.Lock()
	defer mu.Unlock()
	return g != nil && g.s != nil && g.s.lock == nil
}

// othersBusy reports whether a VM on s other than g runs (is not idle). The caller holds mu.
func (s *slot) othersBusy(g *Grant) bool {
	for _, v := range s.vms {
		if v != g && !v.idle {
			return true
		}
	}
	return false
}

// join moves g onto s (its memory with it) and marks it running. The caller holds mu and the
// slots folder's mutex (lockFolder).
func (s *slot) join(g *Grant) {
	if g.s != nil && g.s != s {
		g.s.leave(g)
	}
	if g.s != s {
		s.vms = append(s.vms, g)
		g.s = s
	}
	g.idle = false
	s.record()
}

// leave takes g off s, freeing s when no VM is left on it. The caller holds mu and the slots
// folder's mutex.
func (s *slot) leave(g *Grant) {
	for i, v := range s.vms {
		if v == g {
			s.vms = append(s.vms[:i], s.vms[i+1:]...)
			break
		}
	}
	if len(s.vms) > 0 {
		s.record()
		return
	}
	s.lock.Unlock()
	s.lock = nil
	for i, p := range procSlots {
		if p == s {
			procSlots = append(procSlots[:i], procSlots[i+1:]...)
			break
		}
	}
}

// record writes the slot's file: this process's PID and the memory of every VM on it.
func (s *slot) record() {
	if s.lock == nil {
		return
	}
	mem := 0
	for _, v := range s.vms {
		mem += v.memMB
	}
	_ = os.WriteFile(s.path, []byte(fmt.Sprintf("%d %d\n", os.Getpid(), mem)), 0o600)
}

// Boots is how many VMs with vcpus guest CPUs each may boot (or reboot) at once: one host core
// per boot vCPU (under TCG a boot keeps each vCPU's thread busy for a minute or more);
// VMTEST_MAX_BOOTS overrides it. More boots at once only make each slower: here, two 2-vCPU
// boots at once on two cores beside the suites' restored VMs ran boots and reboots past their
// 6-minute bound; with one vCPU per guest (TCG's default now) one boot left a core idle while
// every other VM waited on it. Restored VMs are mostly idle and need no boot slot.
func Boots(vcpus int) int {
	if n, err := strconv.Atoi(os.Getenv("VMTEST_MAX_BOOTS")); err == nil && n > 0 {
		return n
	}
	return max(1, runtime.NumCPU()/max(1, vcpus))
}

// AcquireBoot waits for one of Boots(vcpus) boot slots. A boot holds it until the guest is ready,
// and never waits for anything else meanwhile, so boot slots cannot deadlock.
func AcquireBoot(ctx context.Context, vcpus int, log func(string, ...any)) (*Grant, error) {
	dir, err := cache.Sub("slots")
	if err != nil {
		return nil, err
	}
	told := false
	for {
		g, used, _, err := func() (*Grant, int, int, error) {
			unlock, err := lockFolder(dir)
			if err != nil {
				return nil, 0, 0, err
			}
			defer unlock()
			return tryClass(dir, "boot", Boots(vcpus), 0, 0)
		}()
		if err != nil || g != nil {
			return g, err
		}
		if !told {
			log("waiting to boot: %d of %d boot slots in use on this host (a boot waits for another to finish)", used, Boots(vcpus))
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a boot slot: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var mu sync.Mutex // guards this process's waiters and marker

// Acquire waits until a VM of memMB fits the host's budget and takes a slot for it: one of
// this process's slots whose VMs are all idle, else a free one. log is told once that the
// caller waits, and why.
func Acquire(ctx context.Context, memMB int, log func(string, ...any)) (*Grant, error) {
	g := &Grant{memMB: memMB}
	if err := place(ctx, g, log); err != nil {
		return nil, err
	}
	return g, nil
}

// place finds g's VM a slot to run on (see Acquire and Busy), waiting as long as it must.
func place(ctx context.Context, g *Grant, log func(string, ...any)) error {
	b, err := HostBudget()
	if err != nil {
		return err
	}
	dir, err := cache.Sub("slots")
	if err != nil {
		return err
	}
	told := false
	var unmark func()
	defer func() {
		if unmark != nil {
			unmark()
		}
	}()
	for {
		placed, shared, usedVMs, usedMB, err := placeNow(dir, b, g)
		if err != nil || placed {
			if shared > 0 {
				log("runs on the VM slot of %d idle VM(s) of this process (they run nothing meanwhile)", shared)
			}
			return err
		}
		if !told {
			log("waiting for a VM slot: %d of %d VMs and %d of %d MiB in use on this host (VMTEST_MAX_VMS)", usedVMs, b.VMs, usedMB, b.MemoryMB)
			told = true
		}
		if unmark == nil {
			unmark = wait("slot")
		} else {
			mu.Lock()
			syncMarker(dir) // retries a marker another process held (checking it) when it was first written
			mu.Unlock()
		}
		if overBudget(dir, b) {
			log("every VM slot is held by a process that waits for another (or keeps its VM for a person): starting this VM over the budget rather than deadlocking")
			mu.Lock()
			unlock, err := lockFolder(dir)
			s := &slot{}
			procSlots = append(procSlots, s)
			s.join(g) // without the mutex where it could not be taken
			if err == nil {
				unlock()
			}
			mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a VM slot (%d VMs, %d MiB in use; holders: %s): %w", usedVMs, usedMB, describeHolders(dir, b), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// placeNow puts g on a slot if one is there for it now: its own when no other VM runs on it,
// one of this process's slots whose VMs are all idle (shared: how many), or a free slot, each
// if the memory fits. The VMs and memory in use are for the caller's log.
func placeNow(dir string, b Budget, g *Grant) (placed bool, shared, usedVMs, usedMB int, err error) {
	mu.Lock()
	defer mu.Unlock()
	g.dir = dir
	if g.s != nil && !g.s.othersBusy(g) {
		return true, 0, 0, 0, nil
	}
	unlock, err := lockFolder(dir)
	if err != nil {
		return false, 0, 0, 0, err
	}
	defer unlock()
	free, freePath, usedVMs, usedMB, err := scan(dir, "vm", b.VMs)
	if err != nil {
		return false, 0, 0, 0, err
	}
	if g.s != nil && g.s.lock != nil {
		usedMB -= g.memMB // counted on the slot it leaves
	}
	fits := usedMB+g.memMB <= b.MemoryMB || usedVMs == 0
	for _, s := range procSlots {
		if fits && s != g.s && s.lock != nil && !s.othersBusy(g) {
			free.Unlock()
			s.join(g)
			return true, len(s.vms) - 1, usedVMs, usedMB, nil
		}
	}
	if free == nil || !fits {
		free.Unlock()
		return false, 0, usedVMs, usedMB, nil
	}
	s := &slot{lock: free, path: freePath}
	procSlots = append(procSlots, s)
	s.join(g)
	return true, 0, usedVMs, usedMB, nil
}

// tryClass takes a free slot among n files "<class>-<i>"; memMB must fit in budgetMB (0: no
// memory accounting).
func tryClass(dir, class string, n, memMB, budgetMB int) (g *Grant, used, usedMB int, err error) {
	free, freePath, used, usedMB, err := scan(dir, class, n)
	if err != nil {
		return nil, 0, 0, err
	}
	if free == nil || (budgetMB > 0 && usedMB+memMB > budgetMB && used > 0) {
		free.Unlock()
		return nil, used, usedMB, nil
	}
	if err := os.WriteFile(freePath, []byte(fmt.Sprintf("%d %d\n", os.Getpid(), memMB)), 0o600); err != nil {
		free.Unlock()
		return nil, 0, 0, err
	}
	return &Grant{lock: free}, used, usedMB, nil
}

// scan counts the held slots among n files "<class>-<i>" and the memory their files record,
// and takes the first free one (nil when none is).
func scan(dir, class string, n int) (free *cache.Lock, freePath string, used, usedMB int, err error) {
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("%s-%d", class, i))
		l, ok, err := cache.TryLock(p)
		if err != nil {
			free.Unlock()
			return nil, "", 0, 0, err
		}
		if ok {
			if free == nil {
				free, freePath = l, p
			} else {
				l.Unlock()
			}
			continue
		}
		used++
		_, mem := readSlot(p)
		usedMB += mem
	}
	return free, freePath, used, usedMB, nil
}

func readSlot(p string) (pid, memMB int) {
	b, _ := os.ReadFile(p)
	f := strings.Fields(string(b))
	if len(f) == 2 {
		pid, _ = strconv.Atoi(f[0])
		memMB, _ = strconv.Atoi(f[1])
	}
	return pid, memMB
}

// Blocked marks this process as blocked on something other than a slot (e.g. another run
// building a saved state) until the returned func is called, for the deadlock check.
func Blocked() func() { return wait("other") }

// KeptForPerson marks this process as keeping a VM for a person (vmtest spawn, a failing test's
// VM kept with VMTEST_KEEP=vm-on-failure) until the returned func is called. Such a slot is
// freed only when the person stops the VM, so for the deadlock check its holder counts as
// blocked: tests that hold the other slots and wait for one start over the budget rather than
// wait for the person (measured: a spawned VM left up during a soak held the fourth slot while
// three packages, each holding its shared VM, waited 70 minutes for a second).
func KeptForPerson() func() { return wait("person") }

// This process's waiters, and the flock'ed waiting-<pid> marker that tells other processes
// what it waits for: "slot" when a goroutine waits for a VM slot (the process is then a
// candidate to start over the budget), else "other" or "person".
var (
	waits    = map[string]int{}
	marker   *cache.Lock
	markedAs string
)

// markerPath is process pid's waiting marker in the slots folder dir.
func markerPath(dir string, pid int) string {
	return filepath.Join(dir, fmt.Sprintf("waiting-%d", pid))
}

// Marker returns what process pid's marker says it waits for ("slot", "other", "person"), for
// a test that watches another process; an error when the process has no marker.
func Marker(pid int) (string, error) {
	dir, err := cache.Sub("slots")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(markerPath(dir, pid))
	return string(b), err
}

// wait counts a waiter of this kind until the returned func is called.
func wait(what string) func() {
	dir, err := cache.Sub("slots")
	if err != nil {
		return func() {}
	}
	mu.Lock()
	waits[what]++
	syncMarker(dir)
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			waits[what]--
			syncMarker(dir)
			mu.Unlock()
		})
	}
}

// syncMarker makes the marker say what this process waits for, or removes it when nothing.
// The caller holds mu.
func syncMarker(dir string) {
	what := ""
	for _, w := range []string{"slot", "other", "person"} {
		if waits[w] > 0 {
			what = w
			break
		}
	}
	if what == markedAs {
		return
	}
	p := markerPath(dir, os.Getpid())
	if what == "" {
		os.Remove(p)
		marker.Unlock()
		marker, markedAs = nil, ""
		return
	}
	for i := 0; marker == nil && i < 3; i++ { // another process may remove a marker it found unlocked, as stale
		l, ok, err := cache.TryLock(p)
		if err != nil || !ok {
			return
		}
		if l.Holds(p) {
			marker = l
		} else {
			l.Unlock()
		}
	}
	if marker != nil && os.WriteFile(p, []byte(what), 0o600) == nil {
		markedAs = what
	}
}

// overBudget reports whether this process should start over the budget: every slot is held,
// every holder is blocked (or keeps its VM for a person), and of the holders waiting for a slot
// this one has the lowest PID.
func overBudget(dir string, b Budget) bool {
	hs, ok := holders(dir, b)
	if !ok {
		return false
	}
	var slotWaiters []int
	for pid, what := range hs {
		switch what {
		case "":
			return false // that holder is not blocked
		case "slot":
			slotWaiters = append(slotWaiters, pid)
		}
	}
	if _, self := hs[os.Getpid()]; !self {
		return false
	}
	sort.Ints(slotWaiters)
	return len(slotWaiters) > 0 && slotWaiters[0] == os.Getpid()
}

// holders maps the PID of each process that holds a VM slot to what its marker says it waits
// for ("slot", "other", "person"; "" when it is not blocked). ok is false when a slot could not
// be read or a stale marker was found (and removed): ask again.
func holders(dir string, b Budget) (hs map[int]string, ok bool) {
	hs = map[int]string{}
	for i := 0; i < b.VMs; i++ {
		p := filepath.Join(dir, fmt.Sprintf("vm-%d", i))
		l, free, err := cache.TryLock(p)
		if err != nil {
			return hs, false
		}
		if free {
			l.Unlock()
			continue
		}
		pid, _ := readSlot(p)
		hs[pid] = ""
	}
	for pid := range hs {
		p := markerPath(dir, pid)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if pid != os.Getpid() {
			l, free, err := cache.TryLock(p)
			if err != nil || free { // a marker its process no longer holds: stale
				if l != nil {
					os.Remove(p)
					l.Unlock()
				}
				return hs, false
			}
		}
		what, _ := os.ReadFile(p)
		hs[pid] = string(what)
	}
	return hs, true
}

// describeHolders says who holds the slots, for a wait that ran out.
func describeHolders(dir string, b Budget) string {
	hs, _ := holders(dir, b)
	pids := make([]int, 0, len(hs))
	for pid := range hs {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	says := map[string]string{"": "running", "slot": "waiting for a slot", "other": "waiting for another run", "person": "keeping a VM for a person: vmtest list, vmtest stop"}
	var parts []string
	for _, pid := range pids {
		parts = append(parts, fmt.Sprintf("pid %d %s", pid, says[hs[pid]]))
	}
	return strings.Join(parts, "; ")
}
