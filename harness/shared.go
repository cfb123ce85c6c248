package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Shared is one VM shared by a package's read-only tests: booted by the first test that asks
// for it, stopped when the package's tests end.
//
//	var vm = harness.NewShared()
//	func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }
//	func TestSomething(t *testing.T) { m := vm.Machine(t); ... }
type Shared struct {
	opts   []Option
	suffix string // "" for a package's first shared VM, "-2", "-3", ... for the others
	once   sync.Once
	m      *Machine
	err    error
	failed atomic.Bool
	// users counts the tests using the VM now: while none does, its host slot may run another
	// VM of the package's (see slots.Grant.Idle).
	users   int
	usersMu sync.Mutex
	// deadline is the first test's (go test's -timeout less a minute), for holding the VM.
	deadline time.Time
}

// NewShared describes the package's shared VM.
func NewShared(opts ...Option) *Shared {
	setup() // signal handlers from the package's start, before any VM
	s := &Shared{opts: opts}
	if n := sharedCount.Add(1); n > 1 {
		s.suffix = fmt.Sprintf("-%d", n)
	}
	return s
}

var sharedCount atomic.Int32

// Main runs the package's tests, then stops the VM (with artifacts if a test failed).
func (s *Shared) Main(m *testing.M) int { return Main(m, s) }

// Main runs the package's tests, then stops every shared VM given (with artifacts if a test
// failed): for a package with more than one.
//
//	var plain, secure = harness.NewShared(), harness.NewShared(harness.WithSecureBoot())
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m, plain, secure)) }
func Main(m *testing.M, vms ...*Shared) int {
	code := m.Run()
	for _, s := range vms {
		s.close(code != 0)
	}
	return code
}

// Machine returns the shared VM, booting it on first use. A boot failure fails every test that
// asks for it, with the same error.
func (s *Shared) Machine(t *testing.T) *Machine {
	t.Helper()
	s.once.Do(func() { s.boot(t) })
	if s.err != nil {
		s.failed.Store(true)
		t.Fatalf("shared VM did not boot: %v", s.err)
	}
	s.use()
	// Each test answers for the console and kernel log of its own time. What the boot printed
	// is the boot suite's to judge (TestNoConsoleTrouble), once, not the first test's here.
	from := s.m.consoleLen()
	s.m.setLog(t.Logf)
	t.Cleanup(func() {
		s.m.checkConsole(t, from)
		s.m.setLog(stderrLog)
		if t.Failed() {
			s.failed.Store(true)
		}
		s.unuse()
	})
	return s.m
}

// use counts a test among the VM's users. It takes a host slot to run on again only when the
// harness next asks something of the guest (Machine.wake): a test that reads the profile from
// it and runs a VM of its own leaves that VM its slot.
func (s *Shared) use() {
	s.usersMu.Lock()
	s.users++
	s.usersMu.Unlock()
}

// unuse ends a test's use: with no test using it, the VM runs nothing until the harness next
// asks something of it, and another VM of this process may run on its host slot meanwhile.
func (s *Shared) unuse() {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.users--; s.users == 0 {
		s.m.slot.Idle()
	}
}

func (s *Shared) boot(t *testing.T) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		s.err = fmt.Errorf("harness configuration: %w", err)
		return
	}
	for _, o := range s.opts {
		o(&cfg)
	}
	// Bounded by the first test's deadline (go test -timeout), not only by the boot timeout: a
	// binary that hits -timeout panics with no artifacts.
	s.deadline, _ = deadline(t)
	ctx, cancel := bootContext(t, context.Background())
	defer cancel()
	s.m, s.err = start(ctx, cfg, "shared-"+packageName()+s.suffix, t.Logf)
	s.err = explainDeadline(ctx, s.err)
	if s.m != nil {
		s.m.setLog(stderrLog)
		s.m.wakeBy = s.deadline
	}
	if s.err == nil {
		s.m.skipBootKernelLog()
	}
}

func (s *Shared) close(failed bool) {
	if s.m == nil {
		return
	}
	defer s.m.Close()
	failed = failed || s.failed.Load() || s.err != nil
	if s.m.cfg.Keep.artifacts(failed) {
		dst := s.m.artifactDir("shared" + s.suffix)
		if err := s.m.saveArtifacts(dst); err != nil {
			fmt.Fprintf(os.Stderr, "artifacts: %s (incomplete: %v)\n", dst, err)
		} else {
			fmt.Fprintf(os.Stderr, "artifacts: %s\n", dst)
		}
	}
	if s.m.cfg.Keep == KeepVMOnFailure && failed {
		s.m.hold(packageName()+"-shared"+s.suffix, s.deadline)
	}
}

func packageName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "pkg"
	}
	return filepath.Base(wd)
}

func stderrLog(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (m *Machine) setLog(f func(string, ...any)) {
	m.mu.Lock()
	m.logf = f
	m.mu.Unlock()
}
