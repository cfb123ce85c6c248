package profile

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltinProfilesLoad(t *testing.T) {
	require.ElementsMatch(t, []string{"standin", "standin-fips", "azurelinux-3.0", "azurelinux-4.0"}, Names())
	for _, n := range Names() {
		p, err := Load(n)
		require.NoError(t, err, n)
		assert.Equal(t, n, p.Name)
		if p.Boot.KernelRelease != "" {
			_, err := regexp.Compile(p.Boot.KernelRelease)
			assert.NoError(t, err, "%s: boot.kernel_release", n)
		}
	}
}

// Every key is declared by every profile, or marked not promised with a reason.
func TestEveryKeyDecidedInEveryProfile(t *testing.T) {
	for _, n := range Names() {
		p, err := Load(n)
		require.NoError(t, err)
		for _, k := range Keys() {
			if _, ok := p.Unpromised(k); ok {
				continue
			}
			assert.True(t, declared(p, k), "profile %s neither declares %s nor lists it under not_promised", n, k)
		}
	}
}

func TestDetect(t *testing.T) {
	p, err := Detect("ID=azurelinux\nVERSION_ID=4.0\nVARIANT_ID=cloud\n")
	require.NoError(t, err)
	assert.Equal(t, "azurelinux-4.0", p.Name)
	p, err = Detect(`ID=azurelinux` + "\n" + `VERSION_ID="3.0"` + "\n")
	require.NoError(t, err)
	assert.Equal(t, "azurelinux-3.0", p.Name)
	p, err = Detect("ID=debian\nVERSION_ID=\"12\"\nVARIANT_ID=azl-vmtest-standin\n")
	require.NoError(t, err)
	assert.Equal(t, "standin", p.Name)
	p, err = Detect("ID=debian\nVERSION_ID=\"12\"\nVARIANT_ID=azl-vmtest-standin-fips\n")
	require.NoError(t, err)
	assert.Equal(t, "standin-fips", p.Name)
	_, err = Detect("ID=debian\nVERSION_ID=\"12\"\n")
	require.Error(t, err, "a plain Debian 12 is not the stand-in")
	assert.Contains(t, err.Error(), "VMTEST_PROFILE")
}

// A profile that extends another is the base with its own keys on top; not_promised follows
// what the derived profile says.
func TestExtends(t *testing.T) {
	base, err := Load("standin")
	require.NoError(t, err)
	p, err := Load("standin-fips")
	require.NoError(t, err)
	assert.Equal(t, "standin-fips", p.Name)
	assert.Equal(t, "azl-vmtest-standin-fips", p.Match.VariantID)
	assert.Equal(t, base.Network, p.Network, "sections it does not name are the base's")
	assert.Equal(t, base.Boot.KernelRelease, p.Boot.KernelRelease, "keys it does not name are the base's")
	assert.Equal(t, []string{"rd.shell=0", "fips=1"}, p.Boot.CmdlineRequired, "keys it names are its own")
	assert.True(t, *p.FIPS.Enabled)
	assert.False(t, *base.FIPS.Enabled)
	_, unpromised := p.Unpromised("fips.ssh_approved")
	assert.False(t, unpromised, "a key the base does not promise and the derived one does is promised")
	assert.NotEmpty(t, p.FIPS.SSHApproved["ciphers"])
	why, _ := p.Unpromised("fips.crypto_policy")
	assert.Contains(t, why, "writes the FIPS policy's OpenSSH lists itself", "its own reason replaces the base's")

	dir := t.TempDir()
	file := filepath.Join(dir, "x.yaml")
	// The other way round: a promised key of the base listed as not promised.
	require.NoError(t, os.WriteFile(file, []byte("name: x\nextends: standin\nmatch: {id: x}\nnot_promised:\n  hardening.aslr: \"not on this one\"\n"), 0o644))
	p, err = Load(file)
	require.NoError(t, err)
	assert.False(t, p.Declares("hardening.aslr"))
	why, _ = p.Unpromised("hardening.aslr")
	assert.Equal(t, "not on this one", why)
	for body, want := range map[string]string{
		"name: x\nextends: nosuch\nmatch: {id: x}\n":             `extends "nosuch", which is no built-in profile`,
		"name: x\nextends: ../standin\nmatch: {id: x}\n":         "extends must name a built-in profile",
		"name: x\nextends: standin\nmatch: {id: x}\nboot: [1]\n": "boot must be a mapping of keys",
	} {
		require.NoError(t, os.WriteFile(file, []byte(body), 0o644))
		_, err := Load(file)
		assert.ErrorContains(t, err, want, body)
	}
}

func TestInvalidProfilesRefused(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "name: x\nmatch: {id: x}\nboot: {kernel_relase: '^6'}\n",
		"no match":    "name: x\nboot: {root_fs: ext4}\n",
		"bad notprom": "name: x\nmatch: {id: x}\nnot_promised: {boot.nonsense: why}\n",
		"not yaml":    "name: [x\n",
		"wrong type":  "name: x\nmatch: {id: x}\nboot: {bls_entries: maybe}\n",
	} {
		p := filepath.Join(dir, "p.yaml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		_, err := Load(p)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "invalid profile "+p, name)
	}
	_, err := Load("no-such-release")
	assert.ErrorContains(t, err, "use one of")
}

// A profile file is checked like a built-in one when loaded: a key it forgets would make its
// check skip silently, a key both promised and not promised is a contradiction.
func TestProfileFileMustBeComplete(t *testing.T) {
	full, err := builtin.ReadFile("profiles/standin.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	p, err := Load(write("ok.yaml", string(full)))
	require.NoError(t, err)
	assert.True(t, p.Declares("firewall.ports"), "an empty list is a declared promise (of nothing)")

	missing := strings.Replace(string(full), "  cmdline_forbidden: [libata.atapi_enabled=0, \"reserve=0x1f0,0x8\"]\n", "", 1)
	require.NotEqual(t, string(full), missing)
	_, err = Load(write("missing.yaml", missing))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no expectation for boot.cmdline_forbidden")
	assert.Contains(t, err.Error(), "list it under not_promised with the reason")

	both := strings.Replace(string(full), "not_promised:\n", "not_promised:\n  boot.root_fs: \"x\"\n", 1)
	_, err = Load(write("both.yaml", both))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boot.root_fs both promised and listed under not_promised")

	wrongType := strings.Replace(string(full), "  root_fs: ext4\n", "  root_fs: [ext4]\n", 1)
	_, err = Load(write("type.yaml", wrongType))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid profile")
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	r := strings.Replace(s, old, new, 1)
	require.NotEqual(t, s, r, "%q not found", old)
	return r
}
