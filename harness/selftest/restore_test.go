package selftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/cache"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
)

// TestRestoredVMsAreIndependent restores two VMs from one saved state at the same time: each
// has its own disk (a file written in one is absent in the other), its own marker, the host's
// clock, and answers within seconds of QEMU's start.
func TestRestoredVMsAreIndependent(t *testing.T) {
	a := harness.Boot(t)
	b := harness.Boot(t)
	ka, ok := a.Restored()
	require.True(t, ok, "the default is to restore a saved booted state")
	kb, _ := b.Restored()
	assert.Equal(t, ka, kb, "one configuration, one saved state")
	t.Logf("restore stages: %s / %s", a.Stages, b.Stages)

	assert.NotEqual(t, a.InstanceID(), b.InstanceID())
	assert.Equal(t, a.InstanceID(), a.MustRun(t, "cat /run/azl-vmtest/instance-id"))
	assert.Equal(t, b.InstanceID(), b.MustRun(t, "cat /run/azl-vmtest/instance-id"))

	a.MustRun(t, "echo only-in-a | sudo tee /var/tmp/vmtest-independent >/dev/null && sync")
	_, code := b.Output(t, "test -e /var/tmp/vmtest-independent")
	assert.Equal(t, 1, code, "a file written in one restored VM must not appear in another")

	for _, m := range []*harness.Machine{a, b} {
		guest, err := strconv.ParseInt(m.MustRun(t, "date +%s"), 10, 64)
		require.NoError(t, err)
		assert.InDelta(t, time.Now().Unix(), guest, 5, "the restored guest's clock must be the host's")
	}
}

// TestSavedStateKeyAndIntegrity: another memory size is another saved state; a state damaged as
// a failing disk would damage it (a byte changed) is noticed before use, reported and rebuilt,
// never loaded; the machine that boots for real rebuilds it on the way and keeps running on a
// disk of its own; and the next machine restores the rebuilt state. The damaged state is planted
// (files that are no guest's, committed, then one byte changed), so the test costs one real
// boot, not the two of saving a state and then rebuilding it: what is checked is the checksum,
// whatever the files hold. (Truncation and every other input are unit-tested in
// harness/savedstate.) The 1536 MiB state is this test's own, so no other test's state is
// touched.
func TestSavedStateKeyAndIntegrity(t *testing.T) {
	other := harness.WithMemory(1536)
	root, err := savedstate.Root()
	require.NoError(t, err)
	kd, err := harness.StateKey(t.Context())
	require.NoError(t, err)
	key, err := harness.StateKey(t.Context(), other)
	require.NoError(t, err)
	require.NotEqual(t, kd, key, "another memory size must make another saved state")
	plantDamagedState(t, root, key)

	var (
		mu  sync.Mutex // the machine logs from its own goroutines too
		log strings.Builder
	)
	donor, err := harness.Start(t.Context(), "donor", func(f string, a ...any) {
		mu.Lock()
		fmt.Fprintf(&log, f+"\n", a...)
		mu.Unlock()
		t.Logf(f, a...)
	}, other, harness.WithFreshBoot())
	require.NoError(t, err)
	defer donor.Close()
	_, restored := donor.Restored()
	require.False(t, restored, "WithFreshBoot boots")
	mu.Lock()
	said := log.String()
	mu.Unlock()
	assert.Contains(t, said, "the saved state is unusable, rebuilding it on the way")
	assert.Contains(t, said, "memory.state has SHA-256")
	_, err = savedstate.Open(root, key)
	require.NoError(t, err, "the fresh boot saved its state on the way, replacing the damaged one")
	donor.MustRun(t, "echo donor | sudo tee /var/tmp/vmtest-donor >/dev/null && sync")

	m := harness.Boot(t, other)
	k, ok := m.Restored()
	require.True(t, ok)
	assert.Equal(t, key, k)
	assert.Equal(t, "azlvmtest", m.MustRun(t, "id -un"))
	_, code := m.Output(t, "test -e /var/tmp/vmtest-donor")
	assert.Equal(t, 1, code, "what the donor wrote after the save is on its own disk only")
	assert.Equal(t, "donor", donor.MustRun(t, "cat /var/tmp/vmtest-donor"), "the donor keeps working after the save")
	kib, err := strconv.Atoi(m.MustRun(t, "awk '/MemTotal/{print $2}' /proc/meminfo"))
	require.NoError(t, err)
	assert.Less(t, kib, 1536*1024, "the VM restored for 1536 MiB must have at most 1536 MiB")
	assert.Greater(t, kib, 1200*1024)
}

// plantDamagedState commits a state for key whose files are no guest's, then changes a byte of
// its memory file: savedstate.Open must refuse it by its checksum, as it would a real state a
// disk damaged.
func plantDamagedState(t *testing.T, root, key string) {
	t.Helper()
	lock, err := savedstate.Lock(t.Context(), root, key, func() { t.Logf("waiting for the lock of state %s", key) })
	require.NoError(t, err)
	defer lock.Unlock()
	stage, err := savedstate.NewStaging(root, key, savedstate.Inputs{})
	require.NoError(t, err)
	for _, name := range []string{savedstate.MemoryFile, savedstate.DiskFile, savedstate.VarsFile, savedstate.SeedFile} {
		require.NoError(t, os.WriteFile(stage.Path(name), []byte(strings.Repeat(name+" planted by azl-vmtest\n", 512)), 0o600))
	}
	_, err = stage.Commit(savedstate.Meta{})
	require.NoError(t, err)
	mem := stage.Path(savedstate.MemoryFile)
	f, err := os.OpenFile(mem, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("X"), 100)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	// This process checksummed the state at the commit and remembers it by size and mtime, which
	// a write in the same clock tick may leave as they were: move the mtime, as another process
	// would not remember it at all.
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(mem, old, old))
	_, err = savedstate.Open(root, key)
	require.ErrorContains(t, err, "memory.state has SHA-256", "the planted state must fail its checksum")
}

// TestStateGoneDuringTheSlotWait: a restore opens its saved state, then waits for a VM slot;
// meanwhile another run finds the state unusable and removes it (here: moves it away under the
// state's lock, as a rebuild would hold it). When the slot comes, the restore must notice, wait
// for the state to be back and restore that, not start QEMU on files that are gone (make test
// on a new machine failed so: "creating overlay over .../disk.qcow2: No such file"). The child
// sees one VM slot (VMTEST_MAX_VMS=1) in a slots folder of its own, which this test holds until
// the state is gone; the VMs of other packages running beside it neither delay it nor see it.
// It uses TestSavedStateKeyAndIntegrity's 1536 MiB state, so no other test's is touched.
func TestStateGoneDuringTheSlotWait(t *testing.T) {
	other := harness.WithMemory(1536)
	root, err := savedstate.Root()
	require.NoError(t, err)
	key, err := harness.StateKey(t.Context(), other)
	require.NoError(t, err)
	if _, err := savedstate.Open(root, key); err != nil {
		t.Logf("building the 1536 MiB state first: %v", err)
		harness.Boot(t, other).Close()
	}
	privateSlots(t)
	again, err := harness.StateKey(t.Context(), other)
	require.NoError(t, err)
	require.Equal(t, key, again, "the private slots folder must not change the state")
	root, err = savedstate.Root()
	require.NoError(t, err)

	t.Setenv("VMTEST_MAX_VMS", "1") // this process and the child: one slot
	slot, err := slots.Acquire(t.Context(), 1, t.Logf)
	require.NoError(t, err)
	defer slot.Release()

	var out bytes.Buffer
	child := exec.Command(os.Args[0], "-test.run=^TestHelperRestoreAfterSlotWait$", "-test.v")
	child.Env = append(os.Environ(), "VMTEST_SELFTEST_HELPER=restore-1536")
	child.Stdout, child.Stderr = &out, &out
	require.NoError(t, child.Start())
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	t.Cleanup(func() {
		_ = child.Process.Kill()
		<-done
		t.Logf("the child said:\n%s", out.String())
	})
	// waitFor waits until the child's slot marker says what, or the child ends.
	waitFor := func(what, why string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			if got, _ := slots.Marker(child.Process.Pid); got == what {
				return
			}
			select {
			case err := <-done:
				done <- err
				require.FailNow(t, "the child ended before it "+why, "exit: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		require.FailNow(t, "the child never "+why)
	}
	waitFor("slot", "waited for the VM slot this test holds")

	lock, err := savedstate.Lock(t.Context(), root, key, func() { t.Logf("waiting for the lock of state %s", key) })
	require.NoError(t, err)
	dir := filepath.Join(root, key)
	// Where savedstate.Remove would move it: if this test is killed before it puts the state
	// back, a later commit deletes the folder (after savedstate.TrashAge), as it would a
	// removal's left-over.
	aside := savedstate.TrashPath(dir, time.Now())
	require.NoError(t, os.Rename(dir, aside))
	t.Cleanup(func() { // back, whatever happened
		if _, err := os.Stat(aside); err == nil {
			_ = os.Rename(aside, dir)
		}
		lock.Unlock()
	})
	slot.Release()
	waitFor("other", "came back for the state after its slot (with the state gone, it must wait for the state's lock)")
	require.NoError(t, os.Rename(aside, dir))
	lock.Unlock()

	select {
	case err := <-done:
		done <- err
		require.NoError(t, err, "the child's restore must succeed once the state is back")
	case <-time.After(5 * time.Minute):
		require.FailNow(t, "the child did not finish within 5 minutes of the state's return")
	}
	assert.Contains(t, out.String(), "the saved state was removed or rebuilt since it was opened")
	assert.Contains(t, out.String(), "RESTORED_OK")
}

// TestHelperRestoreAfterSlotWait is TestStateGoneDuringTheSlotWait's child: it restores a
// 1536 MiB VM and runs a command.
func TestHelperRestoreAfterSlotWait(t *testing.T) {
	if os.Getenv("VMTEST_SELFTEST_HELPER") != "restore-1536" {
		t.Skip("helper for TestStateGoneDuringTheSlotWait (runs only as its child)")
	}
	m := harness.Boot(t, harness.WithMemory(1536))
	_, restored := m.Restored()
	require.True(t, restored)
	fmt.Printf("RESTORED_OK %s\n", m.MustRun(t, "id -un"))
}

// privateSlots gives this process and its children a cache folder whose slots are their own
// and whose other entries (images, saved states, ...) are the real cache's, through symlinks.
// The image is named by its path, which the saved states' keys record.
func privateSlots(t *testing.T) {
	cfg, err := harness.ConfigFromEnv()
	require.NoError(t, err)
	t.Setenv("VMTEST_IMAGE", cfg.Image)
	real := cache.Dir()
	entries, err := os.ReadDir(real)
	require.NoError(t, err)
	tmp := t.TempDir()
	for _, e := range entries {
		if e.Name() != "slots" {
			require.NoError(t, os.Symlink(filepath.Join(real, e.Name()), filepath.Join(tmp, e.Name())))
		}
	}
	t.Setenv("VMTEST_CACHE", tmp)
}

// TestRestoredTPMsCarryTheStateAndAreIndependent restores two Trusted Launch VMs (a TPM and
// Secure Boot: the trustedlaunch suite's configuration, so its saved state) from one saved
// state: each TPM has the saved TPM's state (PCR 7, which the firmware extended at the boot
// that built the state, the same non-zero value in both; a TPM restored without its state
// answers nothing), and each is its own: extending PCR 16 in one changes that PCR there, to
// the value the TPM 2.0 rule gives, and not in the other.
func TestRestoredTPMsCarryTheStateAndAreIndependent(t *testing.T) {
	a := harness.Boot(t, harness.WithTPM(), harness.WithSecureBoot())
	b := harness.Boot(t, harness.WithTPM(), harness.WithSecureBoot())
	ka, ok := a.Restored()
	require.True(t, ok, "a VM with a TPM and Secure Boot is restored")
	kb, _ := b.Restored()
	require.Equal(t, ka, kb, "one configuration, one saved state")

	pcr := func(m *harness.Machine, n int) string {
		return strings.ToLower(m.MustRun(t, fmt.Sprintf("cat /sys/class/tpm/tpm0/pcr-sha256/%d", n)))
	}
	zeros := strings.Repeat("0", 64)
	pcr7 := pcr(a, 7)
	assert.NotEqual(t, zeros, pcr7, "PCR 7 of a restored TPM: measured at the boot that built the state")
	assert.Equal(t, pcr7, pcr(b, 7), "both restored TPMs carry the saved TPM's PCR 7")
	require.Equal(t, zeros, pcr(a, 16), "PCR 16 (debug) before the extend")
	require.Equal(t, zeros, pcr(b, 16), "PCR 16 (debug) before the extend")

	digest := sha256.Sum256([]byte("azl-vmtest"))
	a.MustRun(t, "sudo "+a.InstallProbe(t)+" tpm-pcr-extend 16 "+hex.EncodeToString(digest[:]))
	want := sha256.Sum256(append(make([]byte, 32), digest[:]...)) // PCR := H(PCR || digest)
	assert.Equal(t, hex.EncodeToString(want[:]), pcr(a, 16), "PCR 16 after TPM2_PCR_Extend in this VM")
	assert.Equal(t, zeros, pcr(b, 16), "PCR 16 of the other restored VM: its TPM is its own")
}
