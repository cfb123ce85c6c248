package savedstate

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func inputs() Inputs {
	return Inputs{Image: FileID{Path: "/img.qcow2", Size: 1, MTime: 2}, Arch: "x86_64", Accel: "tcg",
		CPUModel: "max", MemoryMB: 2048, CPUs: 2, Seed: map[string]string{"user": "u"}}
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	base := inputs()
	assert.Len(t, base.Key(), 16)
	assert.Equal(t, base.Key(), inputs().Key(), "equal inputs share a state")
	for name, change := range map[string]func(*Inputs){
		"memory":    func(i *Inputs) { i.MemoryMB = 1536 },
		"cpus":      func(i *Inputs) { i.CPUs = 1 },
		"arch":      func(i *Inputs) { i.Arch = "aarch64" },
		"accel":     func(i *Inputs) { i.Accel = "kvm" },
		"cpu model": func(i *Inputs) { i.CPUModel = "Nehalem" },
		"net":       func(i *Inputs) { i.NetOpen = true },
		"image":     func(i *Inputs) { i.Image.MTime = 3 },
		"qemu":      func(i *Inputs) { i.QEMU.Size = 9 },
		"firmware":  func(i *Inputs) { i.Firmware.Path = "/fw" },
		"devices":   func(i *Inputs) { i.Devices = "x" },
		"seed":      func(i *Inputs) { i.Seed = map[string]string{"user": "v"} },
	} {
		in := inputs()
		change(&in)
		assert.NotEqual(t, base.Key(), in.Key(), "changing the %s must make another state", name)
	}
}

// commit makes a state with small files and returns its root and key.
func commit(t *testing.T) (string, string) {
	root := t.TempDir()
	return root, commitIn(t, root, inputs())
}

// commitIn saves a state of in under root, as a boot would, and returns its key.
func commitIn(t *testing.T, root string, in Inputs) string {
	key := in.Key()
	s, err := NewStaging(root, key, in)
	require.NoError(t, err)
	for _, n := range []string{MemoryFile, DiskFile, VarsFile, SeedFile} {
		require.NoError(t, os.WriteFile(s.Path(n), []byte("content of "+n), 0o600))
	}
	st, err := s.Commit(Meta{User: "u"})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, key), st.Dir)
	return key
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(t.TempDir(), "0123456789abcdef")
	assert.ErrorIs(t, err, ErrMissing)
}

func TestOpenCommitted(t *testing.T) {
	root, key := commit(t)
	st, err := Open(root, key)
	require.NoError(t, err)
	assert.Equal(t, "u", st.Meta.User)
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".build-", "no staging folder is left")
	}
}

func TestTruncatedStateIsRefused(t *testing.T) {
	root, key := commit(t)
	_, err := Open(root, key)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(filepath.Join(root, key, MemoryFile), 3))
	_, err = Open(root, key)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrMissing)
	assert.Contains(t, err.Error(), "memory.state is 3 bytes")
}

func TestCorruptStateIsRefusedEvenAfterAnEarlierCheck(t *testing.T) {
	root, key := commit(t)
	_, err := Open(root, key) // checked once: remembered for this process
	require.NoError(t, err)
	p := filepath.Join(root, key, DiskFile)
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff // same size, other content
	require.NoError(t, os.WriteFile(p, b, 0o600))
	_, err = Open(root, key)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk.qcow2 has SHA-256")
	assert.Contains(t, err.Error(), "(corrupt)")
}

func TestRemoveThenMissing(t *testing.T) {
	root, key := commit(t)
	require.NoError(t, Remove(root, key))
	_, err := Open(root, key)
	assert.ErrorIs(t, err, ErrMissing)
}

// A restore that opened a state and then waited rechecks it: still the same state passes; the
// state removed, or removed and built again (other keys, another commit), is ErrChanged.
func TestRecheckNoticesARemovedOrRebuiltState(t *testing.T) {
	root, key := commit(t)
	st, err := Open(root, key)
	require.NoError(t, err)
	require.NoError(t, st.Recheck(), "nothing changed")

	require.NoError(t, Remove(root, key))
	err = st.Recheck()
	require.ErrorIs(t, err, ErrChanged, "removed")
	assert.ErrorContains(t, err, "no saved state")

	rebuilt := commitIn(t, root, inputs())
	require.Equal(t, key, rebuilt)
	err = st.Recheck()
	require.ErrorIs(t, err, ErrChanged, "removed and built again under the same key")
	assert.ErrorContains(t, err, "it is now the one committed at")
	again, err := Open(root, key)
	require.NoError(t, err)
	assert.NoError(t, again.Recheck(), "the rebuilt state, opened again, is current")
}

// A Remove interrupted between its rename and its delete leaves <key>.removed-<time>: the next
// commit deletes it once it is older than TrashAge, and leaves a younger one to its remover.
func TestCommitDeletesWhatAnInterruptedRemoveLeft(t *testing.T) {
	root := t.TempDir()
	// Named as Remove names them; the folders' own mtimes are old either way (a rename keeps
	// them): the name's time decides.
	old := TrashPath(filepath.Join(root, "0123456789abcdef"), time.Now().Add(-TrashAge-time.Minute))
	young := TrashPath(filepath.Join(root, "fedcba9876543210"), time.Now())
	long := time.Now().Add(-24 * time.Hour)
	for _, d := range []string{old, young} {
		require.NoError(t, os.Mkdir(d, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(d, MemoryFile), []byte("left over"), 0o600))
		require.NoError(t, os.Chtimes(d, long, long))
	}
	commitIn(t, root, inputs())
	assert.NoDirExists(t, old, "a left-over older than TrashAge is deleted")
	assert.DirExists(t, young, "a younger one may still be being deleted")
}

func TestCommitPrunesStatesOfAnOlderImage(t *testing.T) {
	root, oldKey := commit(t)
	in := inputs()
	in.Image.MTime = 99 // the image was rebuilt
	commitIn(t, root, in)
	_, err := Open(root, oldKey)
	assert.ErrorIs(t, err, ErrMissing, "the state of the older image is removed")
}

// A state whose image is gone (the stand-in of an older recipe lives at another path) is
// removed at the next commit; one whose image still exists stays.
func TestCommitPrunesStatesOfAVanishedImage(t *testing.T) {
	root := t.TempDir()
	img := filepath.Join(t.TempDir(), "old.qcow2")
	require.NoError(t, os.WriteFile(img, []byte("x"), 0o644))
	kept := filepath.Join(t.TempDir(), "other.qcow2")
	require.NoError(t, os.WriteFile(kept, []byte("x"), 0o644))
	commitFor := func(path string) string {
		in := inputs()
		in.Image.Path = path
		return commitIn(t, root, in)
	}
	oldKey, keptKey := commitFor(img), commitFor(kept)
	require.NoError(t, os.Remove(img))
	newKey := commitFor(filepath.Join(t.TempDir(), "new.qcow2"))
	_, err := Open(root, oldKey)
	assert.ErrorIs(t, err, ErrMissing, "the state of a vanished image is removed")
	_, err = Open(root, keptKey)
	assert.NoError(t, err, "the state of an image that exists stays")
	_, err = Open(root, newKey)
	assert.NoError(t, err, "the state just committed stays, though its (test) image does not exist")
}

func TestUnfinishedBuildIsMissingAndReplaced(t *testing.T) {
	root := t.TempDir()
	in := inputs()
	s, err := NewStaging(root, in.Key(), in)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.Path(MemoryFile), []byte("half"), 0o600))
	_, err = Open(root, in.Key())
	assert.ErrorIs(t, err, ErrMissing, "a state without its manifest is not saved yet")
	s2, err := NewStaging(root, in.Key(), in)
	require.NoError(t, err)
	_, err = os.Stat(s2.Path(MemoryFile))
	assert.ErrorIs(t, err, os.ErrNotExist, "a new build starts from an empty folder")
}

// List says which states can still be used, and why not.
func TestListSaysWhyAStateIsStale(t *testing.T) {
	root := t.TempDir()
	img := filepath.Join(t.TempDir(), "img.qcow2")
	require.NoError(t, os.WriteFile(img, []byte("x"), 0o644))
	id, err := Identify(img)
	require.NoError(t, err)
	in := inputs()
	in.Image = id
	usable := commitIn(t, root, in)
	in.MemoryMB = 1024
	changed := commitIn(t, root, in)
	require.NoError(t, os.WriteFile(img, []byte("rebuilt"), 0o644))
	in.Image, _ = Identify(img)
	in.MemoryMB = 512
	current := commitIn(t, root, in)
	gone := commitIn(t, root, inputs()) // /img.qcow2 does not exist
	require.NoError(t, os.MkdirAll(filepath.Join(root, "0123456789abcdef"), 0o700))

	infos, err := List(root)
	require.NoError(t, err)
	why := map[string]string{}
	for _, i := range infos {
		why[i.Key] = i.Stale
	}
	// The states of the image before its rebuild were pruned at the next commit of it.
	assert.NotContains(t, why, usable)
	assert.NotContains(t, why, changed)
	assert.Contains(t, why, current)
	assert.Equal(t, "", why[current])
	assert.Equal(t, staleGone, why[gone])
	assert.Equal(t, staleUnfinished, why["0123456789abcdef"])

	require.NoError(t, os.WriteFile(img, []byte("rebuilt again"), 0o644))
	infos, err = List(root)
	require.NoError(t, err)
	for _, i := range infos {
		if i.Key == current {
			assert.Equal(t, staleChanged, i.Stale)
			assert.Equal(t, img, i.Image)
		}
	}
}

// Each key's build leaves a lock file; the lock files of removed states go at the next commit,
// each taken first, while a held one and a state's own stay.
func TestCommitRemovesTheLocksOfStatesNoLongerThere(t *testing.T) {
	root, oldKey := commit(t)
	lockOf := func(key string) string { return filepath.Join(root, key+".lock") }
	l, err := Lock(t.Context(), root, oldKey, nil)
	require.NoError(t, err)
	l.Unlock()
	held, free, err := TryLock(root, "0123456789abcdef") // a build under way, its folder not made yet
	require.NoError(t, err)
	require.True(t, free)
	defer held.Unlock()

	in := inputs()
	in.Image.MTime = 99 // the image was rebuilt: the old state goes
	l, err = Lock(t.Context(), root, in.Key(), nil)
	require.NoError(t, err)
	newKey := commitIn(t, root, in)
	l.Unlock()
	assert.NoFileExists(t, lockOf(oldKey), "the removed state's lock file goes")
	assert.FileExists(t, lockOf("0123456789abcdef"), "a held lock stays")
	assert.FileExists(t, lockOf(newKey), "a state's own lock stays")
	assert.Equal(t, 0, PruneLocks(root), "nothing more to remove")
}
