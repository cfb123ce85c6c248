package harness

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
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
		{"keep", map[string]string{"VMTEST_KEEP": "sometimes"}, `VMTEST_KEEP="sometimes": use never, failed or always`},
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
		})
	}
}

// longDir is a folder whose path leaves no room for a unix socket below it.
func longDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// A 100-character test name still gives a private folder whose socket path fits.
func TestLongTestNameShortFolder(t *testing.T) {
	dir, lock, err := newPrivateDir(strings.Repeat("TestSomethingVeryLong/", 5))
	require.NoError(t, err)
	defer func() { os.RemoveAll(dir); lock.Unlock() }()
	assert.LessOrEqual(t, len(filepath.Join(dir, "qmp.sock")), maxSocketPath)
	assert.Contains(t, filepath.Base(dir), "azl-vmtest-TestSomethingVer-")
}

// A run's folder whose owner is alive stays; one whose owner died (its lock free) goes.
func TestStaleFoldersByLock(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	live, liveLock, err := newPrivateDir("live")
	require.NoError(t, err)
	defer liveLock.Unlock()
	dead, deadLock, err := newPrivateDir("dead")
	require.NoError(t, err)
	deadLock.Unlock() // as the kernel does when its process dies
	young, youngLock, err := newPrivateDir("young")
	require.NoError(t, err)
	youngLock.Unlock()
	old := time.Now().Add(-2 * time.Minute)
	for _, d := range []string{live, dead} {
		require.NoError(t, os.Chtimes(d, old, old))
	}
	removeStaleDirs()
	assert.DirExists(t, young, "a folder made in the last minute (its owner may not hold its lock yet)")
	assert.DirExists(t, live, "a folder whose owner holds its lock")
	assert.NoDirExists(t, dead, "a folder whose owner is gone")
}
