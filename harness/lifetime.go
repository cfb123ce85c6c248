package harness

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// Every private folder is registered from the moment it exists (dirs), and every machine from
// just after, so that Ctrl-C or SIGTERM stops them all and removes their folders (Pdeathsig
// covers SIGKILL and crashes). Once the handler has begun (stopping), no new folder is made: a
// start that was between its checks and its folder when the signal came would otherwise make
// one after the handler looked, and the process would exit leaving it.
var (
	liveMu   sync.Mutex
	live     = map[*Machine]bool{}
	dirs     = map[string]*cache.Lock{} // this process's private folders (newPrivateDir)
	stopping bool                       // the signal handler has begun: no new folders
	sigOnce  sync.Once
	ownerPID = strconv.Itoa(os.Getpid())
)

// setup runs once, at the first harness call (NewShared runs at package initialization): it
// installs the signal handlers and removes folders that SIGKILLed runs left behind.
func setup() {
	sigOnce.Do(func() {
		qemu.Scratch = scratchDir // the KVM probe's folder, removed on a signal like ours
		removeStaleDirs()
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go onSignal(ch)
	})
}

// onSignal stops every VM at once (in parallel) and exits 130 on SIGINT, 143 on SIGTERM; a
// second signal while stopping exits at once (QEMU dies with the process through Pdeathsig).
func onSignal(ch chan os.Signal) {
	sig := <-ch
	code := 130
	if sig == syscall.SIGTERM {
		code = 143
	}
	fmt.Fprintf(os.Stderr, "azl-vmtest: %s: stopping every VM\n", sig)
	go func() {
		s := <-ch
		fmt.Fprintf(os.Stderr, "azl-vmtest: %s again: exiting now\n", s)
		os.Exit(code)
	}()
	stopAll()
	os.Exit(code)
}

// stopAll closes every machine of this process, those another goroutine is closing already
// included (a program that stops its VM on the same signal: Close keeps a machine registered
// until its folder is gone, and a second Close waits for the first), then removes every private
// folder left: the scratch folders, and those of machines still being made. From its start no
// new private folder can be made.
func stopAll() {
	liveMu.Lock()
	stopping = true
	var all []*Machine
	for m := range live {
		all = append(all, m)
	}
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, m := range all {
		wg.Add(1)
		go func() { defer wg.Done(); m.Close() }()
	}
	wg.Wait()
	liveMu.Lock()
	for d, l := range dirs {
		os.RemoveAll(d)
		l.Unlock()
		delete(dirs, d)
	}
	liveMu.Unlock()
}

// scratchDir makes a private folder for a harness step's temporary files (the image checks
// copy sectors and the ESP out of the image). Like a VM's, it is flocked for its life, removed
// on Ctrl-C and SIGTERM, and removed by the next run if its process was killed; done removes it.
func scratchDir(name string) (dir string, done func(), err error) {
	if dir, err = newPrivateDir(name); err != nil {
		return "", nil, err
	}
	return dir, func() { removePrivateDir(dir) }, nil
}

// ScratchDir makes a private folder for a suite's own host-side files (the package suite's
// repositories, served to its guest), on the same terms as the harness's: flocked for its life,
// removed on Ctrl-C and SIGTERM, removed by the next run if its process was killed. done
// removes it; a TestMain calls it after m.Run, as os.Exit skips deferred calls.
func ScratchDir(name string) (dir string, done func(), err error) { return scratchDir(name) }

func register(m *Machine) {
	setup()
	liveMu.Lock()
	live[m] = true
	liveMu.Unlock()
}

func unregister(m *Machine) {
	liveMu.Lock()
	delete(live, m)
	liveMu.Unlock()
}

// dirPrefix names private folders; owner.lock in each is flocked by the owning process for the
// folder's lifetime.
const dirPrefix = "azl-vmtest-"

// maxSocketPath is the longest unix socket path (sun_path holds 108 bytes with the NUL).
const maxSocketPath = 107

// newPrivateDir makes a machine's private 0700 folder with a short name (the QMP socket lives
// in it, and a unix socket path is at most 107 bytes), locks it as this process's and registers
// it for the signal handler, which must be installed first; removePrivateDir removes it.
func newPrivateDir(name string) (string, error) {
	setup()
	liveMu.Lock()
	defer liveMu.Unlock()
	if stopping {
		return "", errors.New("not making a private folder (for a VM or a scratch file): this process is stopping on a signal")
	}
	short := sanitize(name)
	if len(short) > 16 {
		short = short[:16]
	}
	dir, err := os.MkdirTemp("", dirPrefix+short+"-")
	if err != nil {
		return "", fmt.Errorf("making the VM's private folder: %w (set TMPDIR to a writable folder)", err)
	}
	if n := len(filepath.Join(dir, "qmp.sock")); n > maxSocketPath {
		os.RemoveAll(dir)
		return "", fmt.Errorf("TMPDIR %s is too long: the VM's QMP socket path would be %d bytes, over the %d a unix socket allows; set TMPDIR to a shorter folder (e.g. /tmp)", os.TempDir(), n, maxSocketPath)
	}
	lock, ok, err := cache.TryLock(filepath.Join(dir, "owner.lock"))
	if err != nil || !ok {
		os.RemoveAll(dir)
		return "", fmt.Errorf("locking the VM's private folder %s: %v", dir, err)
	}
	_ = os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(ownerPID), 0o600) // for people reading it
	dirs[dir] = lock
	return dir, nil
}

// removePrivateDir removes a folder newPrivateDir made and frees its lock.
func removePrivateDir(dir string) {
	liveMu.Lock()
	lock := dirs[dir]
	delete(dirs, dir)
	liveMu.Unlock()
	os.RemoveAll(dir)
	lock.Unlock()
}

// removeStaleDirs deletes private folders whose owner is gone: their owner.lock is free (the
// kernel drops a flock when its process dies, whatever PID namespace it lived in). Folders of a
// live run, in this container or another sharing TMPDIR, stay locked and are left alone.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		// A folder made in the last minute may be between its creation and its owner's lock.
		if st, err := os.Stat(d); err != nil || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		lockPath := filepath.Join(d, "owner.lock")
		if _, err := os.Stat(lockPath); err != nil {
			removeLegacyDir(d)
			continue
		}
		l, ok, err := cache.TryLock(lockPath)
		if err != nil || !ok {
			continue
		}
		os.RemoveAll(d)
		l.Unlock()
	}
}

// removeLegacyDir removes a folder an older version left (owner.pid only) when that PID is gone.
func removeLegacyDir(d string) {
	b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
		os.RemoveAll(d)
	}
}
