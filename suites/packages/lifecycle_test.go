package packages

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitDriverChoice(t *testing.T) {
	d, why := For("apt")
	require.NotNil(t, d, why)
	assert.Equal(t, "deb", string(d.Format()))
	for _, m := range []string{"dnf5", "tdnf", "dnf"} {
		d, why := For(m)
		assert.Nil(t, d)
		assert.Contains(t, why, "needs the "+m+" driver")
	}
	_, why = For("pacman")
	assert.Contains(t, why, `no driver for packages.manager "pacman"`)
}

func TestUnitAptCommandsSeeOnlyTheRunsRepository(t *testing.T) {
	var a apt
	for _, c := range []string{a.Refresh(), a.Install("1.0", "x"), a.Upgrade("x"), a.Remove("x"), a.Purge("x"), a.CheckUpdate()} {
		assert.Contains(t, c, "Dir::Etc::SourceList="+aptList)
		assert.Contains(t, c, "Dir::Etc::SourceParts=-")
	}
	assert.Contains(t, a.Install("1.0", "vmtest-hello", "vmtest-hello-data"), "vmtest-hello=1.0-1 vmtest-hello-data=1.0-1")
	assert.Contains(t, a.UseRepo("http://10.0.2.100:8080/trusted/", "/etc/k.asc"), "deb [signed-by=/etc/k.asc] http://10.0.2.100:8080/trusted/ ./")
}

func TestUnitInstalledVersion(t *testing.T) {
	require.NoError(t, InstalledVersion("vmtest-hello", "1.0", "1.0-1\n"))
	require.NoError(t, InstalledVersion("vmtest-hello", "", ""))
	assert.EqualError(t, InstalledVersion("vmtest-hello", "1.1", "1.0-1\n"), "vmtest-hello: expected version 1.1 installed, got 1.0-1")
	assert.EqualError(t, InstalledVersion("vmtest-hello", "1.0", ""), "vmtest-hello: expected version 1.0 installed, got none")
	assert.EqualError(t, InstalledVersion("vmtest-hello", "", "1.0-1"), "vmtest-hello: expected not installed, got version 1.0-1 installed")
}

func TestUnitUpgradable(t *testing.T) {
	// apt list --upgradable (Debian 12's apt 2.6).
	out := "Listing...\nvmtest-hello-data/unknown 1.1-1 amd64 [upgradable from: 1.0-1]\nvmtest-hello/unknown 1.1-1 amd64 [upgradable from: 1.0-1]\n"
	require.NoError(t, Upgradable("vmtest-hello", "1.1", out))
	require.NoError(t, Upgradable("vmtest-hello-data", "1.1", out))
	assert.ErrorContains(t, Upgradable("vmtest-hello", "1.1", "Listing...\n"), `updates: expected vmtest-hello 1.1 offered, got "Listing..."`)
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "Listing...\nvmtest-hello-data/unknown 1.1-1 amd64 [upgradable from: 1.0-1]\n"), "another package's update is not this one's")
}

func TestUnitClean(t *testing.T) {
	require.NoError(t, Clean("verify", 0, ""))
	assert.EqualError(t, Clean("verify", 0, "??5?????? c /etc/vmtest-hello.conf\n"), `verify: expected clean (exit 0, no output), got exit 0: "??5?????? c /etc/vmtest-hello.conf"`)
	assert.ErrorContains(t, Clean("audit", 1, "The following packages are only half configured"), "got exit 1")
}

func TestUnitRefused(t *testing.T) {
	e := apt{}.Errors()
	unsigned := "Err:2 http://10.0.2.100:8080/unsigned ./ Release\nE: The repository 'http://10.0.2.100:8080/unsigned ./ Release' is not signed.\n"
	untrusted := "W: GPG error: http://10.0.2.100:8080/untrusted ./ InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 7837A65FC8BE9684\nE: The repository 'http://10.0.2.100:8080/untrusted ./ InRelease' is not signed.\n"
	altered := "E: Failed to fetch http://10.0.2.100:8080/altered/./vmtest-hello_1.1-1_amd64.deb  Hash Sum mismatch\n"
	require.NoError(t, Refused("refresh", true, e.Unsigned, 100, unsigned))
	require.NoError(t, Refused("refresh", true, e.Untrusted, 100, untrusted))
	require.NoError(t, Refused("install", true, e.Altered, 100, altered))
	// The manager accepted what it must refuse (gpgcheck off, or a broken manager).
	assert.ErrorContains(t, Refused("refresh of the unsigned repository", true, e.Unsigned, 0, "Reading package lists..."), "expected refused (non-zero exit and /is not signed/), got exit 0")
	// Refused, but not for the promised reason (e.g. the repository was unreachable).
	assert.ErrorContains(t, Refused("install", true, e.Altered, 100, "E: Failed to fetch http://10.0.2.100:8080/altered/x.deb  404  Not Found"), "got exit 100")
	// gpgcheck off: accepted both ways.
	require.NoError(t, Refused("refresh", false, e.Unsigned, 0, "Reading package lists..."))
	assert.ErrorContains(t, Refused("refresh", false, e.Unsigned, 100, unsigned), "expected accepted (gpgcheck off), got exit 100")
}
