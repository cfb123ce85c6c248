package harness

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Every live machine is registered so that Ctrl-C or SIGTERM stops them all (Pdeathsig covers
// SIGKILL and crashes; this also removes their private folders).
var (
	liveMu   sync.Mutex
	live     = map[*Machine]bool{}
	sigOnce  sync.Once
	ownerPID = strconv.Itoa(os.Getpid())
)

func register(m *Machine) {
	sigOnce.Do(func() {
		removeStaleDirs()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "azl-vmtest: %s: stopping every VM\n", sig)
			liveMu.Lock()
			var all []*Machine
			for m := range live {
				all = append(all, m)
			}
			liveMu.Unlock()
			for _, m := range all {
				m.Close()
			}
			os.Exit(130)
		}()
	})
	liveMu.Lock()
	live[m] = true
	liveMu.Unlock()
}

func unregister(m *Machine) {
	liveMu.Lock()
	delete(live, m)
	liveMu.Unlock()
}

// removeStaleDirs deletes private folders left by test processes that were SIGKILLed (their
// QEMU died with them through Pdeathsig; the overlay files would otherwise stay).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "azl-vmtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}
