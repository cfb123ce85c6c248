// Package savedstate keeps booted VMs on disk so that a test gets a ready guest in seconds:
// the guest's memory and device state (QMP migrate), its disk at that instant (a qcow2 overlay
// over the base image that restored VMs use as a read-only backing file), its firmware
// variables and its cloud-init seed, with a manifest of checksums. A state is keyed by a hash
// of everything that shaped it (Inputs), lives in the cache folder (0700) and is built once
// under a lock however many runs ask for it at the same time.
package savedstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// Format versions the layout; bump it when what a state holds changes. 2: the keys the guest
// trusts are ECDSA P-256 (were ed25519).
const Format = 2

// Files in a state's folder.
const (
	MemoryFile = "memory.state" // QMP migrate stream
	DiskFile   = "disk.qcow2"   // overlay over the base image at the instant of the save
	VarsFile   = "efivars.fd"   // firmware variables
	SeedFile   = "seed.iso"     // the cloud-init seed the guest booted with (still attached)
	Manifest   = "manifest.json"
)

// Inputs is everything that decides what a saved state contains. Two requests with equal
// Inputs can share one state; any difference makes another.
type Inputs struct {
	Image      FileID            `json:"image"`
	Arch       string            `json:"arch"`
	Accel      string            `json:"accel"`
	CPUModel   string            `json:"cpu_model"`
	MemoryMB   int               `json:"memory_mb"`
	CPUs       int               `json:"cpus"`
	NetOpen    bool              `json:"net_open"`
	QEMU       FileID            `json:"qemu"`                  // the emulator binary: states do not cross versions
	Firmware   FileID            `json:"firmware"`              // UEFI code
	Devices    string            `json:"devices"`               // the device set besides disk and NIC (hot-plug ports, ...)
	TPM        FileID            `json:"tpm,omitzero"`          // swtpm: the memory file holds the TPM's state in its format
	SecureBoot bool              `json:"secure_boot,omitempty"` // Microsoft's keys (on aarch64 the firmware code is the plain one)
	Seed       map[string]string `json:"seed"`                  // the suite's seed additions, rendered
	HarnessFmt int               `json:"format"`
}

// FileID identifies a file cheaply: path, size and modification time.
type FileID struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
}

// Identify returns path's FileID.
func Identify(path string) (FileID, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return FileID{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return FileID{}, err
	}
	return FileID{Path: abs, Size: st.Size(), MTime: st.ModTime().UnixNano()}, nil
}

// Key is the inputs' hash (16 hex digits).
func (in Inputs) Key() string {
	in.HarnessFmt = Format
	b, _ := json.Marshal(in) // maps marshal sorted: stable
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// Meta is what a restore needs besides the files: the SSH keys the guest trusts and presents,
// the user-data it booted with, and how long the boot and the save took.
type Meta struct {
	UserKeyPEM string        `json:"user_key_pem"`
	HostKeyPEM string        `json:"host_key_pem"`
	UserData   string        `json:"user_data"`
	User       string        `json:"user"`
	BootTime   time.Duration `json:"boot_ns"`
	SaveTime   time.Duration `json:"save_ns"`
}

type manifest struct {
	Key     string           `json:"key"`
	Inputs  Inputs           `json:"inputs"`
	Meta    Meta             `json:"meta"`
	Files   map[string]entry `json:"files"`
	Created time.Time        `json:"created"`
}

type entry struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// State is a saved state on disk, checked whole.
type State struct {
	Key     string
	Dir     string
	Meta    Meta
	Created time.Time // when it was committed: a rebuild under the same key is another state
}

// Path is the path of one of the state's files.
func (s *State) Path(name string) string { return filepath.Join(s.Dir, name) }

// Root is the folder that holds every saved state.
func Root() (string, error) { return cache.Sub("states") }

// ErrMissing means no state is saved for the key.
var ErrMissing = errors.New("no saved state")

// verified remembers states this process has checksummed (folder -> the files' sizes and
// modification times), so a package that restores many VMs pays for the check once; a file
// written since is checksummed again.
var (
	verifiedMu sync.Mutex
	verified   = map[string]string{}
)

// Open returns the state saved for key after checking it: every file present with the size
// and SHA-256 the manifest records (hashes once per process). A state that fails the check
// is an error naming what is wrong (not ErrMissing): the caller removes and rebuilds it.
func Open(root, key string) (*State, error) {
	dir := filepath.Join(root, key)
	b, err := os.ReadFile(filepath.Join(dir, Manifest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrMissing
	}
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("saved state %s: manifest: %w", dir, err)
	}
	if m.Key != key || m.Inputs.HarnessFmt != Format {
		return nil, fmt.Errorf("saved state %s: manifest is for key %s format %d, want %s format %d", dir, m.Key, m.Inputs.HarnessFmt, key, Format)
	}
	var stamp strings.Builder
	for _, name := range []string{Manifest, MemoryFile, DiskFile, VarsFile, SeedFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("saved state %s: %w", dir, err)
		}
		fmt.Fprintf(&stamp, "%s %d %d\n", name, st.Size(), st.ModTime().UnixNano())
		if name == Manifest {
			continue
		}
		e, ok := m.Files[name]
		if !ok {
			return nil, fmt.Errorf("saved state %s: manifest lists no %s", dir, name)
		}
		if st.Size() != e.Size {
			return nil, fmt.Errorf("saved state %s: %s is %d bytes, the manifest says %d (truncated or replaced)", dir, name, st.Size(), e.Size)
		}
	}
	verifiedMu.Lock()
	done := verified[dir] == stamp.String()
	verifiedMu.Unlock()
	if !done {
		if err := verifyHashes(dir, m.Files); err != nil {
			return nil, err
		}
		verifiedMu.Lock()
		verified[dir] = stamp.String()
		verifiedMu.Unlock()
	}
	return &State{Key: key, Dir: dir, Meta: m.Meta, Created: m.Created}, nil
}

// ErrChanged means a state opened earlier was removed or rebuilt since: what the opener holds
// (its keys, its files) is no longer what the folder holds, so it must open the state again.
var ErrChanged = errors.New("the saved state was removed or rebuilt since it was opened")

// Recheck reports whether s is still the state saved under its key (cheap: Open remembers what
// it checksummed). A restore that opened s and then waited (minutes, for a VM slot) rechecks
// before QEMU uses the files: a state found unusable meanwhile was removed, and perhaps built
// again with other keys. The error wraps ErrChanged and says what changed.
func (s *State) Recheck() error {
	now, err := Open(filepath.Dir(s.Dir), s.Key)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrChanged, err)
	case !now.Created.Equal(s.Created):
		return fmt.Errorf("%w: %s was committed at %s, it is now the one committed at %s", ErrChanged, s.Dir,
			s.Created.Format(time.RFC3339Nano), now.Created.Format(time.RFC3339Nano))
	}
	return nil
}

// verifyHashes checks the files' SHA-256 in parallel.
func verifyHashes(dir string, files map[string]entry) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum, _, err := hashFile(filepath.Join(dir, n))
			if err == nil && sum != files[n].SHA256 {
				err = fmt.Errorf("saved state %s: %s has SHA-256 %s, the manifest says %s (corrupt)", dir, n, sum[:12], files[n].SHA256[:12])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// TrashAge is how old a removed state's folder (renamed, then deleted) must be before a commit
// deletes it as left over: a younger one may still be being deleted by its remover.
const TrashAge = 10 * time.Minute

// trashMark names a removed state's folder: <key>.removed-<the removal's Unix time in ns>.
const trashMark = ".removed-"

// TrashPath is where Remove moves the state folder dir, removed at at, before deleting it: a
// commit deletes what an interrupted removal left there once TrashAge has passed.
func TrashPath(dir string, at time.Time) string {
	return fmt.Sprintf("%s%s%d", dir, trashMark, at.UnixNano())
}

// Remove deletes the state saved for key (a corrupt one), leaving VMs that still use its files
// running: their open files stay readable.
func Remove(root, key string) error {
	dir := filepath.Join(root, key)
	trash := TrashPath(dir, time.Now())
	if err := os.Rename(dir, trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(trash)
}

// TryLock takes the build lock for key if nobody holds it.
func TryLock(root, key string) (*cache.Lock, bool, error) {
	return cache.TryLock(filepath.Join(root, key+".lock"))
}

// Lock serialises building the state for key across processes.
func Lock(ctx context.Context, root, key string, waiting func()) (*cache.Lock, error) {
	return cache.AcquireLock(ctx, filepath.Join(root, key+".lock"), waiting)
}

// Staging is a state being built, in its final folder (a VM's disk overlay is created there
// and its path is recorded in the overlays of later VMs): the state counts as saved only once
// Commit has written the manifest, so a folder without one is an unfinished build.
type Staging struct {
	Dir  string
	root string
	key  string
	in   Inputs
}

// NewStaging makes the empty folder for the state of key, removing an unfinished or rejected
// one. The caller holds the key's lock.
func NewStaging(root, key string, in Inputs) (*Staging, error) {
	if err := Remove(root, key); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, key)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	return &Staging{Dir: dir, root: root, key: key, in: in}, nil
}

// Path is the path of one of the state's files.
func (s *Staging) Path(name string) string { return filepath.Join(s.Dir, name) }

// Commit checksums the files and writes the manifest last (the caller holds the key's lock).
// Stale states of the same image (older size or mtime) and unfinished builds nobody holds are
// removed on the way.
func (s *Staging) Commit(meta Meta) (*State, error) {
	m := manifest{Key: s.key, Inputs: s.in, Meta: meta, Files: map[string]entry{}, Created: time.Now()}
	m.Inputs.HarnessFmt = Format
	for _, name := range []string{MemoryFile, DiskFile, VarsFile, SeedFile} {
		sum, n, err := hashFile(s.Path(name))
		if err != nil {
			return nil, fmt.Errorf("saving state: %w", err)
		}
		m.Files[name] = entry{Size: n, SHA256: sum}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	tmp := s.Path(Manifest + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, s.Path(Manifest)); err != nil {
		return nil, err
	}
	pruneStale(s.root, s.in.Image)
	return Open(s.root, s.key)
}

// Discard removes a state that will not be committed.
func (s *Staging) Discard() { _ = Remove(s.root, s.key) }

// pruneStale removes, at a commit of a state of image, the states made from an older version of
// image (same path, other size or mtime) or from an image that no longer exists (the stand-in of
// an older recipe, whose path carries the recipe's key), and unfinished builds whose builder died
// (no lock held on their key), and what a Remove interrupted half-way left (a folder renamed
// to <key>.removed-<time> more than TrashAge ago: one measured here held a 499 MB memory file),
// and the lock files of the states no longer there.
func pruneStale(root string, image FileID) {
	trash, _ := filepath.Glob(filepath.Join(root, "*"+trashMark+"*"))
	for _, d := range trash {
		// The name says when it was removed (a rename leaves the folder's mtime as it was).
		_, at, _ := strings.Cut(filepath.Base(d), trashMark)
		if ns, err := strconv.ParseInt(at, 10, 64); err == nil && time.Since(time.Unix(0, ns)) > TrashAge {
			_ = os.RemoveAll(d)
		}
	}
	infos, _ := List(root)
	for _, in := range infos {
		older := in.Image == image.Path && in.from != image
		vanished := in.Image != image.Path && in.Stale == staleGone
		if older || vanished || in.Stale == staleUnfinished {
			_ = Remove(root, in.Key)
		}
	}
	PruneLocks(root)
}

// PruneLocks removes the lock files of states that are gone (every key gets one, and a removed
// state's key is never asked for again: its image is gone or changed), each while holding it,
// so a run that wants that key after all locks a new file (cache.Lock). A held lock, or one
// whose state exists, is left. It returns how many it removed.
func PruneLocks(root string) int {
	locks, _ := filepath.Glob(filepath.Join(root, "*.lock"))
	n := 0
	for _, p := range locks {
		gone := func() bool { _, err := os.Lstat(strings.TrimSuffix(p, ".lock")); return errors.Is(err, os.ErrNotExist) }
		if !gone() {
			continue
		}
		l, free, err := cache.TryLock(p)
		if err != nil || !free {
			continue
		}
		if gone() && l.RemoveFile(p) == nil { // asked again under the lock: a build may have begun
			n++
		}
		l.Unlock()
	}
	return n
}

// Why List finds a state stale.
const (
	staleUnfinished = "an unfinished build whose builder is gone"
	staleGone       = "its image is gone"
	staleChanged    = "its image changed since"
)

// Info describes one saved state in the cache.
type Info struct {
	Key, Arch, Image string
	Size             int64  // bytes on disk
	Stale            string // why it can no longer be used; "" if usable
	from             FileID
}

// List describes every saved state under root, sorted by key.
func List(root string) ([]Info, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() || strings.Contains(e.Name(), trashMark) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		in := Info{Key: e.Name(), Size: dirSize(dir)}
		b, err := os.ReadFile(filepath.Join(dir, Manifest))
		if errors.Is(err, os.ErrNotExist) {
			if l, free, _ := cache.TryLock(filepath.Join(root, e.Name()+".lock")); free {
				l.Unlock()
				in.Stale = staleUnfinished
				out = append(out, in)
			}
			continue // else: being built now
		}
		var m manifest
		if err != nil || json.Unmarshal(b, &m) != nil {
			continue
		}
		in.Arch, in.Image, in.from = m.Inputs.Arch, m.Inputs.Image.Path, m.Inputs.Image
		switch now, err := Identify(m.Inputs.Image.Path); {
		case err != nil:
			in.Stale = staleGone
		case now != m.Inputs.Image:
			in.Stale = staleChanged
		}
		out = append(out, in)
	}
	return out, nil
}

func dirSize(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}
