// Package cache says where azl-vmtest keeps what outlives a run (stand-in images, saved VM
// states, built guest helpers) and gives the file locks that let concurrent runs share it.
package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is $VMTEST_CACHE, else $XDG_CACHE_HOME/azl-vmtest, else ~/.cache/azl-vmtest.
func Dir() string {
	if d := os.Getenv("VMTEST_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "azl-vmtest")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "azl-vmtest")
	}
	return filepath.Join(os.TempDir(), "azl-vmtest-cache")
}

// Sub is a folder under Dir, created 0700 if missing.
func Sub(name string) (string, error) {
	d := filepath.Join(Dir(), name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("cache folder %s: %w (set VMTEST_CACHE to a writable folder)", d, err)
	}
	return d, nil
}

// Lock is an exclusive flock on a file. The kernel drops it when the process dies, so a
// killed run never leaves a lock behind. A lock's file may be removed by its holder
// (RemoveFile): whoever then takes the lock on the removed file sees that the path no longer
// names it and locks the path's new file instead, so two holders never meet.
type Lock struct{ f *os.File }

// lockAt opens path and flocks it (how: LOCK_EX, with LOCK_NB to try); ok is false where the
// lock is held. A file removed or replaced while this waited is let go and the path's current
// file locked instead.
func lockAt(path string, how int) (l *Lock, ok bool, err error) {
	for range 100 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, false, err
		}
		if err := unix.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			if err == unix.EWOULDBLOCK {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("locking %s: %w", path, err)
		}
		if l := (&Lock{f: f}); l.Holds(path) {
			return l, true, nil
		}
		f.Close() // its holder removed it: lock the path's file as it is now
	}
	return nil, false, fmt.Errorf("locking %s: the file was removed or replaced each of 100 times it was locked (remove it and run again)", path)
}

// TryLock takes the lock on path if it is free; ok is false if another holder has it.
func TryLock(path string) (l *Lock, ok bool, err error) {
	return lockAt(path, unix.LOCK_EX|unix.LOCK_NB)
}

// AcquireLock waits for the lock on path until ctx ends. waiting is called once if the lock is
// held by someone else (to log that this run waits).
func AcquireLock(ctx context.Context, path string, waiting func()) (*Lock, error) {
	l, ok, err := TryLock(path)
	if err != nil || ok {
		return l, err
	}
	if waiting != nil {
		waiting()
	}
	// A blocking flock cannot be cancelled: it runs on its own goroutine, which hands the
	// lock back itself if nobody is waiting for it any more.
	type result struct {
		l   *Lock
		err error
	}
	ch := make(chan result)
	go func() {
		l, _, err := lockAt(path, unix.LOCK_EX)
		select {
		case ch <- result{l, err}:
		case <-ctx.Done():
			l.Unlock()
		}
	}()
	select {
	case r := <-ch:
		return r.l, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the lock %s: %w", path, ctx.Err())
	}
}

// RemoveFile removes the lock's file at path while the lock is held (to clean up a lock nobody
// will want again); the lock stays held until Unlock. It removes nothing if path no longer names
// the locked file.
func (l *Lock) RemoveFile(path string) error {
	if !l.Holds(path) {
		return nil
	}
	return os.Remove(path)
}

// Holds reports whether the locked file is still the one at path (not removed or replaced
// since it was opened).
func (l *Lock) Holds(path string) bool {
	if l == nil || l.f == nil {
		return false
	}
	a, err1 := l.f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Unlock releases the lock. Safe on nil.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
