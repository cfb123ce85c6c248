package harness

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
)

// Artifacts are uploaded by pipelines: none may hold a private key, though the user-data the
// harness injects carries the guest's SSH host key.
func TestArtifactsHoldNoPrivateKey(t *testing.T) {
	userKey, err := cloudinit.NewKeyPair("user")
	require.NoError(t, err)
	hostKey, err := cloudinit.NewKeyPair("host")
	require.NoError(t, err)
	seed := cloudinit.Seed{InstanceID: "i", Hostname: "h", User: "azlvmtest", UserKey: userKey, HostKey: hostKey}
	ud, err := seed.UserData()
	require.NoError(t, err)
	require.Contains(t, string(ud), "PRIVATE KEY", "the user-data carries the host key (the test's premise)")

	m := &Machine{dir: t.TempDir(), userData: ud, userKey: userKey, hostKey: hostKey}
	require.NoError(t, os.WriteFile(filepath.Join(m.dir, "console.log"), []byte("boot\n"+userKey.PrivatePEM), 0o600))
	dst := filepath.Join(t.TempDir(), "artifacts")
	require.NoError(t, m.saveArtifacts(dst))

	n := 0
	require.NoError(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "PRIVATE KEY", "%s holds a private key", p)
		assert.NotContains(t, string(b), strings.Split(strings.TrimSpace(hostKey.PrivatePEM), "\n")[1], "%s holds key material", p)
		return nil
	}))
	assert.GreaterOrEqual(t, n, 3, "console.log, user-data, boot-stages.txt")
	b, err := os.ReadFile(filepath.Join(dst, "user-data"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "<private key redacted by azl-vmtest>")
	assert.Contains(t, string(b), hostKey.PublicLine, "the public half stays: it says which key the guest had")
}

// A full disk while writing artifacts is reported (the run says its artifacts are incomplete)
// instead of silently losing them.
func TestArtifactsOnAFullDisk(t *testing.T) {
	dst := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dst).Run(); err != nil {
		t.Skipf("needs to mount a small tmpfs (root): %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dst).Run() })
	m := &Machine{dir: t.TempDir(), userData: []byte("#cloud-config\n")}
	require.NoError(t, os.WriteFile(filepath.Join(m.dir, "console.log"), make([]byte, 1<<20), 0o600))
	err := m.saveArtifacts(filepath.Join(dst, "test"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left on device")
}
