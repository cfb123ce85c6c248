package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// vmtest image list/prune on a cache holding the current image, one of an older recipe, a saved
// state of the current image and one of an image that is gone.
func TestImageListAndPrune(t *testing.T) {
	t.Setenv("VMTEST_CACHE", t.TempDir())
	a, err := arch.Lookup("x86_64")
	require.NoError(t, err)
	current := standin.ImagePath(standin.CacheDir(), a, standin.Standard)
	stale := filepath.Join(filepath.Dir(current), "standin-x86_64-0123456789abcdef.qcow2")
	require.NoError(t, os.MkdirAll(filepath.Dir(current), 0o755))
	require.NoError(t, os.WriteFile(current, []byte("current image"), 0o644))
	require.NoError(t, os.WriteFile(stale, []byte("older recipe"), 0o644))

	root, err := savedstate.Root()
	require.NoError(t, err)
	state := func(image string) string {
		id := savedstate.FileID{Path: image, Size: 13}
		if got, err := savedstate.Identify(image); err == nil {
			id = got
		}
		in := savedstate.Inputs{Image: id, Arch: "x86_64", Accel: "tcg", MemoryMB: 2048, CPUs: 2}
		s, err := savedstate.NewStaging(root, in.Key(), in)
		require.NoError(t, err)
		for _, n := range []string{savedstate.MemoryFile, savedstate.DiskFile, savedstate.VarsFile, savedstate.SeedFile} {
			require.NoError(t, os.WriteFile(s.Path(n), []byte(n), 0o600))
		}
		_, err = s.Commit(savedstate.Meta{})
		require.NoError(t, err)
		return in.Key()
	}
	usable := state(current)
	orphan := state(filepath.Join(t.TempDir(), "gone.qcow2"))
	// (committed before its image vanished: a commit prunes the states of vanished images)
	for _, k := range []string{usable, orphan} { // the lock files their builds left
		require.NoError(t, os.WriteFile(filepath.Join(root, k+".lock"), nil, 0o600))
	}

	var out bytes.Buffer
	require.NoError(t, listImages(&out))
	assert.Regexp(t, `standin-x86_64-[0-9a-f]{16}\.qcow2\s+0\s+\S+ \S+\s+current`, out.String())
	assert.Contains(t, out.String(), "standin-x86_64-0123456789abcdef.qcow2")
	assert.Contains(t, out.String(), "stale: an older recipe")
	assert.Regexp(t, usable+`\s+x86_64\s+standin-x86_64-\S+\s+0\s+usable`, out.String())
	assert.Regexp(t, orphan+`\s+x86_64\s+gone.qcow2\s+0\s+stale: its image is gone`, out.String())

	out.Reset()
	require.NoError(t, pruneImages(&out, true))
	assert.Contains(t, out.String(), "would free")
	assert.FileExists(t, stale, "a dry run deletes nothing")
	assert.FileExists(t, filepath.Join(root, orphan+".lock"), "a dry run deletes nothing")

	out.Reset()
	require.NoError(t, pruneImages(&out, false))
	assert.NoFileExists(t, stale)
	assert.FileExists(t, current)
	assert.DirExists(t, filepath.Join(root, usable))
	assert.NoDirExists(t, filepath.Join(root, orphan))
	assert.NoFileExists(t, filepath.Join(root, orphan+".lock"), "the removed state's lock file goes with it")
	assert.FileExists(t, filepath.Join(root, usable+".lock"))
	assert.Contains(t, out.String(), "lock files of saved states no longer there: 1 removed")
}
