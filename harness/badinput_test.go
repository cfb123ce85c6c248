package harness

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// Bad input fails before any VM starts, in under 2 s, naming the cause and the fix.
func TestBadInputFailsFastNamingTheCause(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("needs qemu-img: run scripts/host-setup.sh")
	}
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		return p
	}
	random := make([]byte, 4<<20)
	_, _ = rand.Read(random)
	truncated := filepath.Join(dir, "truncated.qcow2")
	raw := file("disk.raw", random)
	require.NoError(t, exec.Command("sh", "-c", "echo 'label: gpt' | sfdisk -q "+raw).Run())
	require.NoError(t, exec.Command("qemu-img", "convert", "-O", "qcow2", raw, truncated).Run())
	st, err := os.Stat(truncated)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(truncated, st.Size()/2))
	profileFile := func(name, from, to string) string {
		full, err := os.ReadFile("profile/profiles/standin.yaml")
		require.NoError(t, err)
		s := strings.Replace(string(full), from, to, 1)
		require.NotEqual(t, string(full), s)
		return file(name, []byte(s))
	}

	other := "aarch64"
	if runtime.GOARCH == "arm64" {
		other = "x86_64"
	}
	foreign := efiImage(t, dir, other)

	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"image for another architecture", map[string]string{"VMTEST_IMAGE": foreign}, "is built for " + other + " (the UEFI boot loaders on its EFI System Partition), not "},
		{"missing image", map[string]string{"VMTEST_IMAGE": filepath.Join(dir, "nope.qcow2")}, "no such file or directory (set VMTEST_IMAGE"},
		{"empty image", map[string]string{"VMTEST_IMAGE": file("empty.img", nil)}, "too small to be a bootable disk"},
		{"random bytes", map[string]string{"VMTEST_IMAGE": file("random.img", random)}, "no partition table"},
		{"text file", map[string]string{"VMTEST_IMAGE": file("notes.txt", []byte(strings.Repeat("not a disk\n", 200000)))}, "no partition table"},
		{"truncated qcow2", map[string]string{"VMTEST_IMAGE": truncated}, "corrupt or truncated qcow2"},
		{"image is a folder", map[string]string{"VMTEST_IMAGE": dir}, "is a directory"},
		{"no qemu-img", map[string]string{"VMTEST_IMAGE": truncated, "PATH": dir}, "qemu-img not found: run scripts/host-setup.sh"},
		{"unknown architecture", map[string]string{"VMTEST_ARCH": "riscv64"}, "VMTEST_ARCH: unknown architecture \"riscv64\": use one of x86_64, aarch64"},
		{"unknown accelerator", map[string]string{"VMTEST_ACCEL": "fast"}, `VMTEST_ACCEL="fast": use auto, kvm or tcg`},
		{"unknown profile", map[string]string{"VMTEST_PROFILE": "azurelinux-9"}, `VMTEST_PROFILE: no profile "azurelinux-9"`},
		{"profile: unknown key", map[string]string{"VMTEST_PROFILE": profileFile("typo.yaml", "  root_fs:", "  root_fss:")}, "field root_fss not found"},
		{"profile: wrong type", map[string]string{"VMTEST_PROFILE": profileFile("type.yaml", "  auditd: true", "  auditd: maybe")}, "invalid profile"},
		{"profile: missing key", map[string]string{"VMTEST_PROFILE": profileFile("missing.yaml", "  swap: false\n", "")}, "no expectation for storage.swap"},
		{"memory too small", map[string]string{"VMTEST_MEM": "1"}, `VMTEST_MEM="1": want MiB of guest memory: at least 512`},
		{"memory too large", map[string]string{"VMTEST_MEM": "999999999"}, `VMTEST_MEM="999999999": want MiB of guest memory`},
		{"memory not a number", map[string]string{"VMTEST_MEM": "2G"}, `VMTEST_MEM="2G"`},
		{"no CPUs", map[string]string{"VMTEST_CPUS": "0"}, `VMTEST_CPUS="0": want guest CPUs, 1 to 64`},
		{"too many CPUs", map[string]string{"VMTEST_CPUS": "1000"}, `VMTEST_CPUS="1000"`},
		{"keep", map[string]string{"VMTEST_KEEP": "sometimes"}, `VMTEST_KEEP="sometimes": use never, failed, always or vm-on-failure`},
		{"negative boot timeout", map[string]string{"VMTEST_BOOT_TIMEOUT": "-1m"}, `VMTEST_BOOT_TIMEOUT="-1m": want a positive duration`},
		{"boot timeout not a duration", map[string]string{"VMTEST_BOOT_TIMEOUT": "soon"}, `VMTEST_BOOT_TIMEOUT="soon"`},
		{"restore", map[string]string{"VMTEST_RESTORE": "maybe"}, `VMTEST_RESTORE="maybe": use 1`},
		{"network", map[string]string{"VMTEST_NET": "wide"}, `VMTEST_NET="wide": use restricted or open`},
		{"VM budget", map[string]string{"VMTEST_MAX_VMS": "0"}, `VMTEST_MAX_VMS="0": want a positive integer`},
		{"boot budget", map[string]string{"VMTEST_MAX_BOOTS": "many"}, `VMTEST_MAX_BOOTS="many": want a positive integer`},
		{"unwritable artifacts", map[string]string{"VMTEST_ARTIFACTS": "/proc/azl-vmtest-artifacts"}, "VMTEST_ARTIFACTS=/proc/azl-vmtest-artifacts is not a writable folder"},
		{"TMPDIR too long for a socket", map[string]string{"TMPDIR": longDir(t), "VMTEST_IMAGE": raw, "VMTEST_ACCEL": "tcg"}, "is too long: the VM's QMP socket path would be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp, err := os.MkdirTemp("", "vt") // short: a private folder's socket path lives under it
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(tmp) })
			t.Setenv("TMPDIR", tmp)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m, err := Start(ctx, "bad-input", t.Logf, WithSSHOnly(), WithFreshBoot())
			if m != nil {
				m.Close()
			}
			require.Error(t, err, "a VM started")
			assert.Contains(t, err.Error(), c.want)
			assert.Less(t, time.Since(start), 2*time.Second, "bad input must fail fast")
			left, _ := filepath.Glob(filepath.Join(tmp, "*"))
			assert.Empty(t, left, "the image checks' scratch files and folders are removed")
		})
	}
}

// efiImage writes a small GPT disk whose EFI System Partition holds a removable-media boot
// loader (a bare PE header) for arch, as an image built for arch has.
func efiImage(t *testing.T, dir, arch string) string {
	p := filepath.Join(dir, "efi-"+arch+".raw")
	d, err := diskfs.Create(p, 64<<20, diskfs.SectorSizeDefault)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Partition(&gpt.Table{LogicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 2048 + 40*2048 - 1, Type: gpt.EFISystemPartition, Name: "ESP"},
	}}))
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32})
	require.NoError(t, err)
	require.NoError(t, fsys.Mkdir("/EFI/BOOT"))
	name, machine := map[string]string{"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI"}[arch], map[string]uint16{"x86_64": 0x8664, "aarch64": 0xAA64}[arch]
	pe := make([]byte, 512)
	copy(pe, "MZ")
	binary.LittleEndian.PutUint32(pe[0x3C:], 0x80)
	copy(pe[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(pe[0x84:], machine)
	f, err := fsys.OpenFile("/EFI/BOOT/"+name, os.O_CREATE|os.O_RDWR)
	require.NoError(t, err)
	_, err = f.Write(pe)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return p
}

// longDir is a folder whose path leaves no room for a unix socket below it.
func longDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// A 100-character test name still gives a private folder whose socket path fits.
func TestLongTestNameShortFolder(t *testing.T) {
	dir, err := newPrivateDir(strings.Repeat("TestSomethingVeryLong/", 5))
	require.NoError(t, err)
	defer removePrivateDir(dir)
	assert.LessOrEqual(t, len(filepath.Join(dir, "qmp.sock")), maxSocketPath)
	assert.Contains(t, filepath.Base(dir), "azl-vmtest-TestSomethingVer-")
}

// A run's folder whose owner is alive stays; one whose owner died (its lock free) goes.
func TestStaleFoldersByLock(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	live, err := newPrivateDir("live")
	require.NoError(t, err)
	dead, err := newPrivateDir("dead")
	require.NoError(t, err)
	unlockDir(dead) // as the kernel does when its process dies
	young, err := newPrivateDir("young")
	require.NoError(t, err)
	unlockDir(young)
	for _, d := range []string{live, dead, young} {
		defer removePrivateDir(d)
	}
	old := time.Now().Add(-2 * time.Minute)
	for _, d := range []string{live, dead} {
		require.NoError(t, os.Chtimes(d, old, old))
	}
	removeStaleDirs()
	assert.DirExists(t, young, "a folder made in the last minute (its owner may not hold its lock yet)")
	assert.DirExists(t, live, "a folder whose owner holds its lock")
	assert.NoDirExists(t, dead, "a folder whose owner is gone")
}

// unlockDir frees a private folder's lock, as the kernel does when its owner dies.
func unlockDir(dir string) {
	liveMu.Lock()
	defer liveMu.Unlock()
	dirs[dir].Unlock()
}

// The architecture check reads the boot loaders' PE headers: the right architecture passes,
// another fails naming both, and a disk without an ESP has nothing to judge.
func TestCheckArchReadsTheESP(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("needs qemu-img: run scripts/host-setup.sh")
	}
	ctx := context.Background()
	dir := t.TempDir()
	for _, a := range []string{"x86_64", "aarch64"} {
		info, err := qemu.Inspect(ctx, efiImage(t, dir, a), dir)
		require.NoError(t, err)
		archs, err := qemu.EFIArchitectures(ctx, info, dir)
		require.NoError(t, err)
		assert.Equal(t, []string{a}, archs)
		require.NoError(t, qemu.CheckArch(ctx, info, a, dir))
	}
	info, err := qemu.Inspect(ctx, filepath.Join(dir, "efi-aarch64.raw"), dir)
	require.NoError(t, err)
	assert.ErrorContains(t, qemu.CheckArch(ctx, info, "x86_64", dir), "is built for aarch64 (the UEFI boot loaders on its EFI System Partition), not x86_64: set VMTEST_ARCH=aarch64, or VMTEST_IMAGE to an x86_64 image")

	bare := filepath.Join(dir, "bare.raw")
	require.NoError(t, os.WriteFile(bare, make([]byte, 4<<20), 0o644))
	require.NoError(t, exec.Command("sh", "-c", "echo 'label: gpt' | sfdisk -q "+bare).Run())
	info, err = qemu.Inspect(ctx, bare, dir)
	require.NoError(t, err)
	archs, err := qemu.EFIArchitectures(ctx, info, dir)
	require.NoError(t, err)
	assert.Empty(t, archs, "no ESP: nothing to judge")
	require.NoError(t, qemu.CheckArch(ctx, info, "x86_64", dir))
}
