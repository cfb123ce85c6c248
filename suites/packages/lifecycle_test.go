package packages

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitDriverChoice(t *testing.T) {
	for m, format := range map[string]string{"apt": "deb", "dnf": "rpm"} {
		d, why := For(m)
		require.NotNil(t, d, why)
		assert.Equal(t, format, string(d.Format()))
		assert.Equal(t, m, d.Name())
	}
	for _, m := range []string{"dnf5", "tdnf"} {
		d, why := For(m)
		assert.Nil(t, d)
		assert.Contains(t, why, "needs the "+m+" driver")
	}
	_, why := For("pacman")
	assert.Contains(t, why, `no driver for package manager "pacman"`)
}

func TestUnitAptCommandsSeeOnlyTheRunsRepository(t *testing.T) {
	var a apt
	for _, c := range []string{a.Refresh(), a.Install("1.0", "x"), a.Upgrade("x"), a.Remove("x"), a.Purge("x"), a.CheckUpdate()} {
		assert.Contains(t, c, "Dir::Etc::SourceList="+aptList)
		assert.Contains(t, c, "Dir::Etc::SourceParts=-")
	}
	assert.Contains(t, a.Install("1.0", "vmtest-hello", "vmtest-hello-data"), "vmtest-hello=1.0-1 vmtest-hello-data=1.0-1")
	assert.Contains(t, a.UseRepo("http://10.0.2.100:8080/deb/trusted/", "/etc/k.asc", false), "deb [signed-by=/etc/k.asc] http://10.0.2.100:8080/deb/trusted/ ./")
}

func TestUnitDnfCommandsSeeOnlyTheRunsRepository(t *testing.T) {
	var d dnf
	for _, c := range []string{d.Refresh(), d.Install("1.0", "x"), d.CheckUpdate(), d.Upgrade("x"), d.Downgrade("1.0", "x"), d.HistoryUndo(), d.Remove("x"), d.Purge("x")} {
		assert.Contains(t, c, "--disablerepo='*' --enablerepo=vmtest")
	}
	assert.Contains(t, d.Install("1.0", "vmtest-hello", "vmtest-hello-data"), "install vmtest-hello-1.0 vmtest-hello-data-1.0")
	assert.Contains(t, d.Downgrade("1.0", "vmtest-hello"), "downgrade vmtest-hello-1.0")
	repo := d.UseRepo("http://10.0.2.100:8080/rpm/trusted/", "/etc/k.asc", false)
	assert.Contains(t, repo, `baseurl=http://10.0.2.100:8080/rpm/trusted/\ngpgkey=file:///etc/k.asc`)
	assert.NotContains(t, repo, "gpgcheck=", "the image's own gpgcheck and repo_gpgcheck decide")
	assert.Contains(t, repo, "skip_if_unavailable=0")
	assert.Contains(t, d.UseRepo("http://h/", "/k", true), `repo_gpgcheck=1\n`)
	assert.Equal(t, "/etc/vmtest-hello.conf.rpmnew", d.NewConfig("/etc/vmtest-hello.conf"))
	assert.Equal(t, "/etc/vmtest-hello.conf.rpmsave", d.RemovedConfig("/etc/vmtest-hello.conf"))
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

// refusal returns the driver's refusal for a subtest name.
func refusal(t *testing.T, d Driver, name string) Refusal {
	for _, r := range d.Refusals() {
		if r.Name() == name {
			return r
		}
	}
	t.Fatalf("%s has no refusal %s", d.Name(), name)
	return Refusal{}
}

func TestUnitRefused(t *testing.T) {
	a := apt{}
	e := struct{ Unsigned, Untrusted, Altered string }{refusal(t, a, "unsigned").Pattern, refusal(t, a, "untrusted").Pattern, refusal(t, a, "altered").Pattern}
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

func TestUnitDnfRefused(t *testing.T) {
	d := dnf{}
	// Recorded from Debian 12's dnf 4.14 on the stand-in (x86-64), gpgcheck=True.
	unsigned := "Package vmtest-hello-1.1-1.x86_64.rpm is not signed\nPackage vmtest-hello-data-1.1-1.x86_64.rpm is not signed\nThe downloaded packages were saved in cache until the next successful transaction.\nYou can remove cached packages by executing 'dnf clean packages'.\nError: GPG check FAILED\n"
	untrusted := "The GPG keys listed for the \"azl-vmtest package fixtures\" repository are already installed but they are not correct for this package.\nCheck that the correct key URLs are configured for this repository.. Failing package is: vmtest-hello-1.1-1.x86_64\n GPG Keys are configured as: file:///etc/vmtest-repo-key.asc\nPublic key for vmtest-hello-data-1.1-1.x86_64.rpm is not installed. Failing package is: vmtest-hello-data-1.1-1.x86_64\nError: GPG check FAILED\n"
	altered := "Problem opening package vmtest-hello-1.1-1.x86_64.rpm\nThe downloaded packages were saved in cache until the next successful transaction.\nError: GPG check FAILED\n"
	metadata := "Error: Failed to download metadata for repo 'vmtest': repomd.xml GPG signature verification error: Bad GPG signature\n"
	for name, out := range map[string]string{"unsigned": unsigned, "untrusted": untrusted, "altered": altered, "untrusted-metadata": metadata} {
		r := refusal(t, d, name)
		require.NoError(t, Refused(name, true, r.Pattern, 1, out), name)
		// Each pattern names its own reason: another refusal's output does not satisfy it.
		for other, o := range map[string]string{"unsigned": unsigned, "untrusted": untrusted, "altered": altered, "untrusted-metadata": metadata} {
			if other != name {
				assert.Error(t, Refused(name, true, r.Pattern, 1, o), "%s's pattern must not match the %s output", name, other)
			}
		}
	}
	assert.True(t, refusal(t, d, "untrusted-metadata").AtRefresh)
	assert.True(t, refusal(t, d, "untrusted-metadata").RepoGPGCheck)
	assert.False(t, refusal(t, d, "unsigned").AtRefresh, "dnf checks package signatures at install")
	// gpgcheck off: dnf installs the unsigned package (exit 0): the check fails when gpgcheck is promised.
	assert.ErrorContains(t, Refused("install from the unsigned repository", true, refusal(t, d, "unsigned").Pattern, 0, "Installed:\n  vmtest-hello-1.1-1.x86_64\nComplete!\n"), "got exit 0")
}

func TestUnitCheckUpdateDnf(t *testing.T) {
	// dnf check-update (exit 100) on the stand-in after installing 1.0.
	out := "Unable to detect release version (use '--releasever' to specify release version)\nazl-vmtest package fixtures                      18 kB/s | 1.3 kB     00:00    \n\nvmtest-hello.x86_64                           1.1-1                       vmtest\nvmtest-hello-data.x86_64                      1.1-1                       vmtest\n"
	require.NoError(t, Upgradable("vmtest-hello", "1.1", out))
	require.NoError(t, Upgradable("vmtest-hello-data", "1.1", out))
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "vmtest-hello-data.x86_64   1.1-1   vmtest\n"))
	assert.Equal(t, 100, dnf{}.UpdatesExit())
}
