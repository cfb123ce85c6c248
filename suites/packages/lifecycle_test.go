package packages

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitDriverChoice(t *testing.T) {
	for m, format := range map[string]string{"apt": "deb", "dnf": "rpm", "dnf5": "rpm", "tdnf": "rpm"} {
		d, why := For(m)
		require.NotNil(t, d, why)
		assert.Equal(t, format, string(d.Format()))
		assert.Equal(t, m, d.Name())
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

func TestUnitRPMCommandsSeeOnlyTheRunsRepository(t *testing.T) {
	for _, tc := range []struct {
		d              rpmDriver
		only           string
		check, history string
		exit           int
		cache          string
	}{
		{dnf4, "sudo dnf -y --disablerepo='*' --enablerepo=vmtest ", "check-update", "history undo last", 100, "/var/cache/dnf"},
		{dnf5, "sudo dnf5 -y --repo=vmtest ", "check-upgrade", "history undo last", 100, "/var/cache/libdnf5"},
		{tdnf, "sudo tdnf -y --repo=vmtest ", "-j check-update", `history undo --from "$(sudo tdnf history init`, 0, "/var/cache/tdnf"},
	} {
		d := tc.d
		for _, c := range []string{d.Refresh(), d.Install("1.0", "x"), d.CheckUpdate(), d.Upgrade("x"), d.Downgrade("1.0", "x"), d.HistoryUndo(), d.Remove("x"), d.Purge("x")} {
			assert.Contains(t, c, tc.only, d.name)
		}
		assert.Contains(t, d.CheckUpdate(), tc.only+tc.check)
		assert.Equal(t, tc.exit, d.UpdatesExit(), d.name)
		assert.Contains(t, d.HistoryUndo(), tc.only+tc.history)
		assert.Contains(t, d.Install("1.0", "vmtest-hello", "vmtest-hello-data"), "install vmtest-hello-1.0 vmtest-hello-data-1.0")
		assert.Contains(t, d.Downgrade("1.0", "vmtest-hello"), "downgrade vmtest-hello-1.0")
		repo := d.UseRepo("http://10.0.2.100:8080/rpm/trusted/", "/etc/k.asc", false)
		assert.Contains(t, repo, `baseurl=http://10.0.2.100:8080/rpm/trusted/\ngpgkey=file:///etc/k.asc`)
		assert.NotContains(t, repo, "gpgcheck=", "the image's own gpgcheck and repo_gpgcheck decide")
		assert.Contains(t, repo, "skip_if_unavailable=0")
		// The previous repository's metadata and packages are gone (the same repository ID is
		// reused, and its metadata could be taken as still valid).
		assert.True(t, strings.HasSuffix(repo, " && sudo rm -rf "+tc.cache+"/*"), "%s: %s", d.name, repo)
		assert.Contains(t, d.UseRepo("http://h/", "/k", true), `repo_gpgcheck=1\n`)
		assert.Equal(t, "/etc/vmtest-hello.conf.rpmnew", d.NewConfig("/etc/vmtest-hello.conf"))
		assert.Equal(t, "/etc/vmtest-hello.conf.rpmsave", d.RemovedConfig("/etc/vmtest-hello.conf"))
		assert.Contains(t, d.Audit(), "sudo rpmdb --verifydb")
	}
}

// The tdnf history command picks the last transaction of `tdnf history list` (format from
// tools/cli/lib/api.c: "ID   cmd line  date/time  +add / -rem", then "%4d ..." rows).
func TestUnitTdnfHistoryPicksTheLastTransaction(t *testing.T) {
	list := "ID   cmd line                                 date/time             +add  / -rem\n   1 (set)                                    2026-11-28 08:00:00   +312  / -0   \n   2 install -y vmtest-hello-1.0              2026-11-28 08:01:00   +2    / -0   \n  13 upgrade -y vmtest-hello                  2026-11-28 08:02:00   +2    / -2   \n"
	cmd := exec.Command("awk", `$1 ~ /^[0-9]+$/ {id=$1} END {print id}`)
	cmd.Stdin = strings.NewReader(list)
	got, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "13", strings.TrimSpace(string(got)))
	assert.Contains(t, tdnf.HistoryUndo(), `awk '$1 ~ /^[0-9]+$/ {id=$1} END {print id}'`, "the command tested here is the driver's")
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

// refusals are each RPM manager's output for each case. dnf 4's were recorded on the stand-in
// (Debian 12's dnf 4.14, gpgcheck=True); dnf5's and tdnf's are composed from the format
// strings in their sources (dnf5 5.4.4.0: libdnf5/base/transaction.cpp,
// libdnf5/rpm/rpm_signature.cpp, libdnf5/repo/repo.cpp; tdnf: tools/cli/main.c "Error(%u) : %s",
// client/defines.h, include/tdnferror.h, plugins/repogpgcheck) with the run's names filled in.
var refusals = map[string]map[string]string{
	"dnf": {
		"unsigned":           "Package vmtest-hello-1.1-1.x86_64.rpm is not signed\nPackage vmtest-hello-data-1.1-1.x86_64.rpm is not signed\nThe downloaded packages were saved in cache until the next successful transaction.\nYou can remove cached packages by executing 'dnf clean packages'.\nError: GPG check FAILED\n",
		"untrusted":          "The GPG keys listed for the \"azl-vmtest package fixtures\" repository are already installed but they are not correct for this package.\nCheck that the correct key URLs are configured for this repository.. Failing package is: vmtest-hello-1.1-1.x86_64\n GPG Keys are configured as: file:///etc/vmtest-repo-key.asc\nPublic key for vmtest-hello-data-1.1-1.x86_64.rpm is not installed. Failing package is: vmtest-hello-data-1.1-1.x86_64\nError: GPG check FAILED\n",
		"altered":            "Problem opening package vmtest-hello-1.1-1.x86_64.rpm\nThe downloaded packages were saved in cache until the next successful transaction.\nError: GPG check FAILED\n",
		"untrusted-metadata": "Error: Failed to download metadata for repo 'vmtest': repomd.xml GPG signature verification error: Bad GPG signature\n",
	},
	"dnf5": {
		"unsigned":           "OpenPGP check for package \"vmtest-hello-1.1-1.x86_64\" (/var/cache/libdnf5/vmtest-1f2e3d4c5b6a7988/packages/vmtest-hello-1.1-1.x86_64.rpm) from repo \"vmtest\" has failed: The package is not signed.\nTransaction failed: Signature verification failed.\n",
		"untrusted":          "OpenPGP check for package \"vmtest-hello-1.1-1.x86_64\" (/var/cache/libdnf5/vmtest-1f2e3d4c5b6a7988/packages/vmtest-hello-1.1-1.x86_64.rpm) from repo \"vmtest\" has failed: Public key is not installed.\nTransaction failed: Signature verification failed.\n",
		"altered":            "OpenPGP check for package \"vmtest-hello-1.1-1.x86_64\" (/var/cache/libdnf5/vmtest-1f2e3d4c5b6a7988/packages/vmtest-hello-1.1-1.x86_64.rpm) from repo \"vmtest\" has failed: Problem occurred when opening the package.\nTransaction failed: Signature verification failed.\n",
		"untrusted-metadata": "Failed to download metadata (baseurl: \"http://10.0.2.100:8080/rpm/untrusted/\") for repository \"vmtest\": Librepo error: repomd.xml GPG signature verification error: Signing key not found\n",
	},
	"tdnf": {
		"unsigned":           "Error(1510) : RPM not signed. Use --nogpgcheck to ignore.\n",
		"untrusted":          "Error(1514) : RPM is signed but failed to match with known keys. Use --nogpgcheck to ignore.\n",
		"altered":            "Error(1471) : rpm generic error - not found (possible corrupt rpm file)\n",
		"untrusted-metadata": "repo md signature check: No public key\nError(2004) : failed to verify signature\n",
	},
}

func TestUnitRPMRefused(t *testing.T) {
	for name, outs := range refusals {
		d, _ := For(name)
		for c, out := range outs {
			r := refusal(t, d, c)
			require.NoError(t, Refused(c, true, r.Pattern, 1, out), "%s %s", name, c)
			// Each pattern names its own reason: another refusal's output does not satisfy it.
			for other, o := range outs {
				if other != c {
					assert.Error(t, Refused(c, true, r.Pattern, 1, o), "%s: %s's pattern must not match the %s output", name, c, other)
				}
			}
		}
		// With gpgcheck off rpm itself still refuses the altered package (recorded on the
		// stand-in by TestRefusalsFailWhenSignaturesAreNotChecked, dnf 4.14 and rpm 4.18).
		nogpg := "Running transaction test\nThe downloaded packages were saved in cache until the next successful transaction.\nYou can remove cached packages by executing 'dnf clean packages'.\nError: Transaction test error:\n  package vmtest-hello-1.1-1.x86_64 does not verify: Payload SHA256 digest: BAD (Expected 673725b0d6a19525ad2d3209a10e53504dc55d709526525db5acec7d96214eed != 2efc1f09edbb7084cc3c231ec943e0fb3d4c647266e6ba9e6826757e4f9e3e69)\n"
		require.NoError(t, Refused("altered, gpgcheck off", true, refusal(t, d, "altered").Pattern, 1, nogpg), name)
		for _, c := range []string{"unsigned", "untrusted", "untrusted-metadata"} {
			assert.Error(t, Refused(c, true, refusal(t, d, c).Pattern, 1, nogpg), "%s: %s's pattern must not match rpm's digest refusal", name, c)
		}
		assert.True(t, refusal(t, d, "untrusted-metadata").AtRefresh, name)
		assert.True(t, refusal(t, d, "untrusted-metadata").RepoGPGCheck, name)
		assert.False(t, refusal(t, d, "unsigned").AtRefresh, "%s checks package signatures at install", name)
		// gpgcheck off: the manager installs the unsigned package (exit 0): the check fails
		// when gpgcheck is promised.
		assert.ErrorContains(t, Refused("install from the unsigned repository", true, refusal(t, d, "unsigned").Pattern, 0, "Installed:\n  vmtest-hello-1.1-1.x86_64\nComplete!\n"), "got exit 0")
	}
}

func TestUnitCheckUpdateDnf(t *testing.T) {
	// dnf check-update (exit 100) on the stand-in after installing 1.0.
	out := "Unable to detect release version (use '--releasever' to specify release version)\nazl-vmtest package fixtures                      18 kB/s | 1.3 kB     00:00    \n\nvmtest-hello.x86_64                           1.1-1                       vmtest\nvmtest-hello-data.x86_64                      1.1-1                       vmtest\n"
	require.NoError(t, Upgradable("vmtest-hello", "1.1", out))
	require.NoError(t, Upgradable("vmtest-hello-data", "1.1", out))
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "vmtest-hello-data.x86_64   1.1-1   vmtest\n"))
	assert.Equal(t, 100, dnf4.UpdatesExit())
}

func TestUnitCheckUpdateDnf5(t *testing.T) {
	// dnf5 check-upgrade prints a table of name.arch, version, repository (composed).
	out := "Updating and loading repositories:\nRepositories loaded.\nvmtest-hello.x86_64      1.1-1      vmtest\nvmtest-hello-data.x86_64 1.1-1      vmtest\n"
	require.NoError(t, Upgradable("vmtest-hello", "1.1", out))
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "Updating and loading repositories:\nRepositories loaded.\n"))
}

func TestUnitCheckUpdateTdnf(t *testing.T) {
	// tdnf -j check-update: a JSON array of Name, Arch, Evr, Repo (tools/cli/lib/api.c,
	// TDNFCliListPackagesPrint).
	out := `[{"Name":"vmtest-hello","Arch":"x86_64","Evr":"1.1-1","Repo":"vmtest"},{"Name":"vmtest-hello-data","Arch":"x86_64","Evr":"1.1-1","Repo":"vmtest"}]`
	require.NoError(t, Upgradable("vmtest-hello", "1.1", out))
	require.NoError(t, Upgradable("vmtest-hello-data", "1.1", "Loaded plugin: tdnfrepogpgcheck\n"+out))
	assert.Error(t, Upgradable("vmtest-hello", "1.2", out))
	assert.Error(t, Upgradable("vmtest-hello", "1.1", `[{"Name":"vmtest-hello-data","Arch":"x86_64","Evr":"1.1-1","Repo":"vmtest"}]`))
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "[]"))
	// Its plain listing drops the version (a %%s in its format): not what the driver asks for.
	assert.Error(t, Upgradable("vmtest-hello", "1.1", "%s\rvmtest-hello.x86_64\n"))
}

func TestUnitInstallOnly(t *testing.T) {
	// dnf 4's conf.dump() on the stand-in (Debian's dnf.conf sets installonly_limit=3).
	n, err := InstallOnlyLimit("gpgcheck = 1\ninstallonly_limit = 3\ninstallonlypkgs = kernel, installonlypkg(vm)\n")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	n, err = InstallOnlyLimit("installonly_limit=0\n") // dnf5 dump / tdnf.conf spelling; 0: no limit
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	_, err = InstallOnlyLimit("(no RPM package manager: no dnf5, dnf or tdnf)\n")
	assert.ErrorContains(t, err, "installonly_limit: not in the manager's configuration dump")
	_, err = InstallOnlyLimit("installonly_limit = three\n")
	assert.ErrorContains(t, err, `"three" is not a count`)

	v := []string{"1.0", "2.0", "3.0", "4.0"}
	require.NoError(t, InstallOnlyKept("vmtest-kernel", v, 3, "2.0-1\n3.0-1\n4.0-1\n")) // rpm -q on the stand-in
	require.NoError(t, InstallOnlyKept("vmtest-kernel", v, 3, "4.0\n2.0\n3.0\n"))
	require.NoError(t, InstallOnlyKept("vmtest-kernel", v, 0, "1.0\n2.0\n3.0\n4.0\n"))
	require.NoError(t, InstallOnlyKept("vmtest-kernel", v, 9, "1.0\n2.0\n3.0\n4.0\n"))
	// Not install-only (each install replaced the last), the limit ignored, or the newest removed.
	assert.EqualError(t, InstallOnlyKept("vmtest-kernel", v, 3, "4.0\n"),
		`vmtest-kernel versions installed after installing 1.0, 2.0, 3.0, 4.0 (installonly_limit 3): expected "2.0 3.0 4.0", got "4.0"`)
	assert.Error(t, InstallOnlyKept("vmtest-kernel", v, 3, "1.0\n2.0\n3.0\n4.0\n"))
	assert.Error(t, InstallOnlyKept("vmtest-kernel", v, 3, "1.0\n2.0\n3.0\n"))
}
