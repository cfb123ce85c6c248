package cache

import (
	"context"
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
