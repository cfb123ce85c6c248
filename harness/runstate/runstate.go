// Package runstate is the registry of kept VMs: those `vmtest spawn` keeps, and those a failing
// test keeps with VMTEST_KEEP=vm-on-failure. Each lives in $VMTEST_CACHE/run/<name>/ (0700: it
// holds the login key) with a lock its holder keeps for the VM's life, so any process can list
// them, reach them (`vmtest ssh`, `vmtest test`) and stop them (SIGTERM to the holder), and a
// holder that died is found by its free lock.
package runstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// State is what a holder writes about its VM.
type State struct {
	Name, Target, KeyFile, HostKeyLine, KnownHosts string
	Arch, Profile, Image, ConsoleLog               string
	// Test names the failing test that kept it ("" for vmtest spawn).
	Test    string `json:",omitempty"`
	Pid     int
	Started time.Time
}

// Root is the registry's folder.
func Root() (string, error) { return cache.Sub("run") }

// Entry is a name taken in the registry, locked by this process until Release.
type Entry struct {
	Name, Dir string
	lock      *cache.Lock
}

// Create takes name; it fails, saying how to free it, if a VM of that name is kept.
func Create(name string) (*Entry, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("a VM named %s exists (vmtest list; vmtest stop %s)", name, name)
		}
		return nil, err
	}
	lock, ok, err := cache.TryLock(filepath.Join(dir, "lock"))
	if err != nil || !ok {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("locking %s: %v", dir, err)
	}
	return &Entry{Name: name, Dir: dir, lock: lock}, nil
}

// Write publishes the VM's state: from now on list shows it.
func (e *Entry) Write(s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e.Dir, "state.json"), b, 0o600)
}

// Release removes the entry (call it once the VM is stopped).
func (e *Entry) Release() {
	os.RemoveAll(e.Dir)
	e.lock.Unlock()
}

// Load reads every kept VM's state, sorted by name. An entry whose holder died is removed and
// named in gone; one still starting (no state yet) is skipped.
func Load() (states []State, gone []string, err error) {
	root, err := Root()
	if err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if l, free, err := cache.TryLock(filepath.Join(dir, "lock")); err == nil && free {
			l.Unlock()
			os.RemoveAll(dir)
			gone = append(gone, e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil {
			continue
		}
		var s State
		if json.Unmarshal(b, &s) == nil {
			states = append(states, s)
		}
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Name < states[j].Name })
	return states, gone, nil
}

// AwaitReleased waits until the holder of name has released it (its lock is free: the VM is
// stopped, or the holder died), then removes what it left. An entry already gone counts as
// released; ctx bounds the wait.
func AwaitReleased(ctx context.Context, name string) error {
	root, err := Root()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, name)
	l, err := cache.AcquireLock(ctx, filepath.Join(dir, "lock"), nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	l.Unlock()
	return os.RemoveAll(dir)
}
