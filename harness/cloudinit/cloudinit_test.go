package cloudinit

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func seed(t *testing.T) *Seed {
	u, err := NewKeyPair("user@test")
	require.NoError(t, err)
	h, err := NewKeyPair("host")
	require.NoError(t, err)
	return &Seed{InstanceID: "i-1", Hostname: "vm1", User: "tester", UserKey: u, HostKey: h}
}

func TestUserDataHarnessPart(t *testing.T) {
	s := seed(t)
	s.RunCmd = []string{"touch /run/x"}
	s.WriteFiles = []File{{Path: "/etc/x.conf", Content: "a=1\n", Permissions: "0644"}}
	s.Extra = map[string]any{"timezone": "UTC"}
	ud, err := s.UserData()
	require.NoError(t, err)
	doc, err := ValidateUserData(ud)
	require.NoError(t, err)
	assert.Equal(t, "vm1", doc["hostname"])
	assert.Equal(t, "UTC", doc["timezone"])
	keys := doc["ssh_keys"].(map[string]any)
	assert.Equal(t, s.HostKey.PublicLine, keys["ecdsa_public"])
	assert.True(t, strings.HasPrefix(s.HostKey.PublicLine, "ecdsa-sha2-nistp256 "), s.HostKey.PublicLine)
	assert.Contains(t, keys["ecdsa_private"], "BEGIN OPENSSH PRIVATE KEY")
	assert.Equal(t, []any{"ecdsa"}, doc["ssh_genkeytypes"], "cloud-init's schema rejects an empty list")
	users := doc["users"].([]any)
	assert.Equal(t, "tester", users[0].(map[string]any)["name"])
	assert.Equal(t, []any{"touch /run/x"}, doc["runcmd"])
}

func TestExtraCannotOverrideHarnessKeys(t *testing.T) {
	s := seed(t)
	s.Extra = map[string]any{"ssh_keys": map[string]string{}}
	_, err := s.UserData()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"ssh_keys" is set by the harness`)
}

func TestValidateUserData(t *testing.T) {
	_, err := ValidateUserData([]byte("#!/bin/sh\necho hi\n"))
	assert.ErrorContains(t, err, `must start with "#cloud-config"`)
	_, err = ValidateUserData([]byte("#cloud-config\nusers: [\n"))
	assert.ErrorContains(t, err, "not valid YAML")
}

func TestSeedISOIsCidataWithRockRidgeNames(t *testing.T) {
	s := seed(t)
	s.NetworkConfig = "version: 2\nethernets: {}\n"
	path := filepath.Join(t.TempDir(), "seed.iso")
	require.NoError(t, s.WriteISO(path))

	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly))
	require.NoError(t, err)
	fs, err := d.GetFilesystem(0)
	require.NoError(t, err)
	assert.Equal(t, "cidata", strings.TrimRight(fs.Label(), "\x00 "))
	for name, want := range map[string]string{"/meta-data": "instance-id: i-1\nlocal-hostname: vm1\n", "/network-config": s.NetworkConfig} {
		f, err := fs.OpenFile(name, os.O_RDONLY)
		require.NoError(t, err, name)
		b, err := io.ReadAll(f)
		require.NoError(t, err)
		assert.Equal(t, want, string(b))
	}
	f, err := fs.OpenFile("/user-data", os.O_RDONLY)
	require.NoError(t, err)
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	assert.Equal(t, "vm1", doc["hostname"])
}

func TestInvalidNetworkConfigRefused(t *testing.T) {
	s := seed(t)
	s.NetworkConfig = "version: [2\n"
	assert.ErrorContains(t, s.WriteISO(filepath.Join(t.TempDir(), "seed.iso")), "network-config is not valid YAML")
}

func TestParseKeyPairRoundTrip(t *testing.T) {
	k, err := NewKeyPair("c")
	require.NoError(t, err)
	back, err := ParseKeyPair(k.PrivatePEM, "c")
	require.NoError(t, err)
	assert.Equal(t, k.PublicLine, back.PublicLine)
	assert.Equal(t, k.Private, back.Private)
	_, err = ParseKeyPair("not a key", "c")
	assert.Error(t, err)
}
