package harness

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"
)

// keyFiles writes a private key file and returns it with two host key lines.
func keyFiles(t *testing.T) (keyFile, hostLine, otherLine string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := gossh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	keyFile = filepath.Join(t.TempDir(), "id")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600))
	line := func() string {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		k, err := gossh.NewPublicKey(pub)
		require.NoError(t, err)
		return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
	}
	return keyFile, line(), line()
}

// sshTarget sets the ssh target's variables for target with fresh keys and reads them back.
func sshTarget(t *testing.T, target string) (tg Target, key, host, other string) {
	t.Helper()
	key, host, other = keyFiles(t)
	t.Setenv("VMTEST_TARGET", target)
	t.Setenv("VMTEST_SSH_KEY", key)
	t.Setenv("VMTEST_SSH_HOST_KEY", host)
	tg, err := targetFromEnv()
	require.NoError(t, err)
	return tg, key, host, other
}

func TestTargetDefaultIsQEMU(t *testing.T) {
	for _, v := range []string{"", "qemu"} {
		t.Setenv("VMTEST_TARGET", v)
		tg, err := targetFromEnv()
		require.NoError(t, err)
		assert.Equal(t, TargetQEMU, tg.Kind)
	}
}

func TestTargetSSH(t *testing.T) {
	tg, _, host, other := sshTarget(t, "ssh://azureuser@10.1.2.3:2222")
	assert.Equal(t, "10.1.2.3:2222", tg.Addr)
	assert.Equal(t, "azureuser", tg.User)
	assert.Equal(t, host, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(tg.HostKey))))
	assert.Equal(t, "ssh://azureuser@10.1.2.3:2222", tg.String())

	// Port 22 by default; the host key from a known_hosts file: the entry naming the host.
	t.Setenv("VMTEST_TARGET", "ssh://azureuser@vm.example.com")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte("other.example.com "+other+"\nvm.example.com "+host+"\n"), 0o644))
	t.Setenv("VMTEST_SSH_HOST_KEY", kh)
	tg, err := targetFromEnv()
	require.NoError(t, err)
	assert.Equal(t, "vm.example.com:22", tg.Addr)
	assert.Equal(t, host, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(tg.HostKey))))

	// Several keys and none for this host: which to pin is the user's call, not a guess.
	require.NoError(t, os.WriteFile(kh, []byte("a.example.com "+other+"\nb.example.com "+host+"\n"), 0o644))
	_, err = targetFromEnv()
	assert.ErrorContains(t, err, "holds 2 keys and none for vm.example.com:22")
}

func TestTargetMistakesNameTheFix(t *testing.T) {
	key, host, _ := keyFiles(t)
	for _, v := range []string{"AZURE_SUBSCRIPTION_ID", "VMTEST_AZURE_LOCATION", "VMTEST_AZURE_IMAGE"} {
		t.Setenv(v, "")
	}
	for _, c := range []struct{ target, key, hostKey, want string }{
		{"azure", "", "", "VMTEST_TARGET=azure needs AZURE_SUBSCRIPTION_ID (the subscription to create VMs in), VMTEST_AZURE_LOCATION (the region, e.g. westus3), VMTEST_AZURE_IMAGE"},
		{"libvirt://x", "", "", `VMTEST_TARGET="libvirt://x": use qemu (the default) or ssh://user@host:port`},
		{"ssh://10.1.2.3", "", "", "want ssh://user@host:port"},
		{"ssh://u:secret@10.1.2.3", "", "", "no password in the URL"},
		{"ssh://u@10.1.2.3", "", "", "needs VMTEST_SSH_KEY"},
		{"ssh://u@10.1.2.3", "/nonexistent/id", "", "VMTEST_SSH_KEY: open /nonexistent/id"},
		{"ssh://u@10.1.2.3", host, "", "not an unencrypted private key"},
		{"ssh://u@10.1.2.3", key, "", "needs VMTEST_SSH_HOST_KEY"},
		{"ssh://u@10.1.2.3", key, "AAAA-not-a-key", "neither a public key line nor a readable file"},
	} {
		keyArg := c.key
		if c.key == host { // a file holding a public key where the private one belongs
			keyArg = filepath.Join(t.TempDir(), "pub")
			require.NoError(t, os.WriteFile(keyArg, []byte(host), 0o644))
		}
		t.Setenv("VMTEST_TARGET", c.target)
		t.Setenv("VMTEST_SSH_KEY", keyArg)
		t.Setenv("VMTEST_SSH_HOST_KEY", c.hostKey)
		start := time.Now()
		_, err := ConfigFromEnv()
		assert.ErrorContains(t, err, c.want, c.target)
		assert.Less(t, time.Since(start), 2*time.Second, "a configuration mistake is reported at once")
	}
}

func TestRequireSkipsNamingThePowerAndTarget(t *testing.T) {
	tg, _, _, _ := sshTarget(t, "ssh://u@10.1.2.3:2222")
	m := &Machine{cfg: Config{Target: tg}}
	for _, p := range []Power{PowerConsole, PowerQMP, PowerHostNetwork, PowerSeed, PowerVirtHardware, PowerAccelerator} {
		assert.False(t, m.Has(p))
		var skipped bool
		t.Run(string(p), func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			m.Require(t, p)
		})
		assert.True(t, skipped, "Require(%s) on an ssh target must skip", p)
	}
	// Nothing QEMU's is touched on a machine without it.
	assert.Nil(t, m.Dead())
	assert.Nil(t, m.consoleLines(0))
	assert.Contains(t, m.consoleTail(5), "no serial console on target ssh://u@10.1.2.3:2222")
}

// A suite's scratch folder (the package suite's repositories) is registered like the
// harness's own, so the signal handler removes it; done removes it and unregisters it.
func TestSuiteScratchFolderIsRemovedOnASignal(t *testing.T) {
	dir, done, err := ScratchDir("repos")
	require.NoError(t, err)
	assert.Contains(t, filepath.Base(dir), dirPrefix+"repos-", "named like a private folder, so a killed run's is found")
	assert.FileExists(t, filepath.Join(dir, "owner.lock"))
	assert.True(t, inScratch(dir), "the suite's folder %s is in the scratch registry", dir)
	done()
	assert.NoDirExists(t, dir)
	assert.False(t, inScratch(dir))
}

// inScratch says whether dir is in the registry of scratch folders the signal handler removes.
func inScratch(dir string) bool {
	liveMu.Lock()
	defer liveMu.Unlock()
	_, ok := dirs[dir]
	return ok
}

// The KVM probe's temporary folder is one of the harness's scratch folders, which a Ctrl-C or
// SIGTERM handler removes (a signal during the probe left it behind once).
func TestKVMProbeFolderIsRemovedOnASignal(t *testing.T) {
	setup()
	dir, done, err := qemu.Scratch("kvmprobe")
	require.NoError(t, err)
	assert.True(t, inScratch(dir), "the probe's folder %s is in the scratch registry", dir)
	done()
	assert.NoDirExists(t, dir)
	assert.False(t, inScratch(dir))
}
