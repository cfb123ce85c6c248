package runstate

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AwaitReleased waits while the holder keeps its entry, and cleans what a holder that is gone
// left.
func TestAwaitReleased(t *testing.T) {
	t.Setenv("VMTEST_CACHE", t.TempDir())
	e, err := Create("held")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = AwaitReleased(ctx, "held")
	cancel()
	assert.Error(t, err, "held: the wait runs out")
	assert.DirExists(t, e.Dir)

	e.Release()
	require.NoError(t, AwaitReleased(context.Background(), "held"), "released and removed: done")

	root, err := Root()
	require.NoError(t, err)
	dead := filepath.Join(root, "dead") // a holder killed outright: folder left, lock free
	require.NoError(t, os.Mkdir(dead, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "state.json"), []byte(`{}`), 0o600))
	require.NoError(t, AwaitReleased(context.Background(), "dead"))
	assert.NoDirExists(t, dead)
}
