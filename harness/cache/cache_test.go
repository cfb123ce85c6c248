package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirFollowsEnvironment(t *testing.T) {
	t.Setenv("VMTEST_CACHE", "/x/c")
	assert.Equal(t, "/x/c", Dir())
	t.Setenv("VMTEST_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/x/xdg")
	assert.Equal(t, "/x/xdg/azl-vmtest", Dir())
}

func TestLockExcludesAndWaits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l")
	l1, ok, err := TryLock(p)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = TryLock(p)
	require.NoError(t, err)
	assert.False(t, ok, "a held lock is not free")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := false
	_, err = AcquireLock(ctx, p, func() { waited = true })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, waited, "the caller is told that it waits")

	go func() { time.Sleep(50 * time.Millisecond); l1.Unlock() }()
	l2, err := AcquireLock(context.Background(), p, nil)
	require.NoError(t, err)
	l2.Unlock()
}

func TestLockFileRemovedByItsHolderIsNeverHeldTwice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.lock")
	holder, ok, err := TryLock(p)
	require.NoError(t, err)
	require.True(t, ok)

	// A waiter blocks on the file the holder is about to remove.
	got := make(chan *Lock)
	go func() {
		l, err := AcquireLock(context.Background(), p, nil)
		assert.NoError(t, err)
		got <- l
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, holder.RemoveFile(p))
	_, err = os.Stat(p)
	require.ErrorIs(t, err, os.ErrNotExist, "the held lock's file is removed")
	holder.Unlock()

	waiter := <-got
	require.NotNil(t, waiter)
	assert.True(t, waiter.Holds(p), "the waiter holds the path's new file, not the removed one")
	_, ok, err = TryLock(p)
	require.NoError(t, err)
	assert.False(t, ok, "a third process finds the lock held: the waiter and it never both hold it")
	waiter.Unlock()

	l, ok, err := TryLock(p)
	require.NoError(t, err)
	require.True(t, ok)
	other, err := os.Create(p + ".other")
	require.NoError(t, err)
	other.Close()
	require.NoError(t, os.Rename(p+".other", p)) // the path now names another file
	require.NoError(t, l.RemoveFile(p))
	_, err = os.Stat(p)
	assert.NoError(t, err, "RemoveFile leaves a file that is not the locked one")
	l.Unlock()
}
