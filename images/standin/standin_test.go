package standin

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
)

func TestKeyDependsOnArch(t *testing.T) {
	x, _ := arch.Lookup("x86_64")
	a, _ := arch.Lookup("aarch64")
	assert.Len(t, Key(x, Standard), 16)
	assert.Equal(t, Key(x, Standard), Key(x, Standard))
	assert.NotEqual(t, Key(x, Standard), Key(a, Standard))
	assert.Contains(t, ImagePath("/c", a, Standard), "/c/images/standin-aarch64-"+Key(a, Standard)+".qcow2")
}

func TestFlavourHasItsOwnKeyAndImage(t *testing.T) {
	x, _ := arch.Lookup("x86_64")
	assert.NotEqual(t, Key(x, Standard), Key(x, FIPS), "the FIPS layer is part of the FIPS image's key")
	assert.Contains(t, ImagePath("/c", x, FIPS), "/c/images/standin-fips-x86_64-"+Key(x, FIPS)+".qcow2")
	// The standard image's key does not cover the FIPS layer: changing it rebuilds only the
	// FIPS image.
	assert.Empty(t, Standard.layer())
	f, err := ParseFlavour("fips")
	require.NoError(t, err)
	assert.Equal(t, FIPS, f)
	f, err = ParseFlavour("standard")
	require.NoError(t, err)
	assert.Equal(t, Standard, f)
	_, err = ParseFlavour("fisp")
	assert.ErrorContains(t, err, `unknown stand-in flavour "fisp": use standard or fips`)
}

func TestFIPSFlavourOnlyForTheHostArch(t *testing.T) {
	for _, a := range arch.All() {
		why := FIPS.Supports(a)
		if a.Native() {
			assert.Empty(t, why)
		} else {
			assert.Contains(t, why, "built for the host's architecture")
			_, err := Build(context.Background(), Options{Arch: a, Flavour: FIPS, CacheDir: t.TempDir(), Log: io.Discard})
			assert.ErrorContains(t, err, why, "refused before anything is built")
		}
		assert.Empty(t, Standard.Supports(a))
	}
}

func TestPackagesIncludeArchKernelAndGrub(t *testing.T) {
	a, _ := arch.Lookup("aarch64")
	p := Packages(a)
	assert.Contains(t, p, "linux-image-cloud-arm64")
	assert.Contains(t, p, "grub-efi-arm64-bin")
	assert.Contains(t, p, "grub-efi-arm64-signed")
	assert.Contains(t, p, "shim-signed")
	assert.Contains(t, p, "firewalld")
	for _, x := range p {
		assert.False(t, strings.HasPrefix(x, "#") || x == "", "junk package entry %q", x)
	}
}

func TestSelectSourcesUsesHostEntriesForTheSuite(t *testing.T) {
	deb822 := `Types: deb
URIs: http://mirror.corp.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.corp.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64

Types: deb
URIs: http://mirror.corp.example/amd64-only
Suites: bookworm
Components: main
Architectures: amd64
`
	entries := append(parseDeb822(deb822), parseOneLine("deb [arch=arm64] http://ports.corp.example/debian bookworm main contrib # comment\n# deb http://x bookworm main\n")...)
	arm := selectSources(entries, "bookworm", "arm64")
	assert.Equal(t, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.corp.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.corp.example/debian bookworm-updates main
deb http://mirror.corp.example/debian-security bookworm-security main
deb http://ports.corp.example/debian bookworm main contrib
`, arm)
	amd := selectSources(entries, "bookworm", "amd64")
	assert.Contains(t, amd, "amd64-only")
	assert.NotContains(t, amd, "ports.corp.example")
	assert.NotContains(t, amd, "nodesource")
	require.Empty(t, selectSources(parseOneLine("deb http://x trixie main\n"), "bookworm", "amd64"))
}

// A tool that prints a line longer than the output scanner takes must still run to its end
// (the builder used to stop reading, and the tool blocked on its full pipe for ever).
func TestBuilderDrainsLongLines(t *testing.T) {
	b := &builder{opts: Options{Log: io.Discard}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := b.cmdIn(ctx, strings.NewReader("x"), "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; echo; head -c 1000000 /dev/zero; cat >/dev/null; exit 3")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exit status 3", "the tool ran to its end")
	assert.NoError(t, ctx.Err())
}

func TestAptFailuresNamesWhatFailed(t *testing.T) {
	err := errors.New("apt-get source --download-only openssl: exit status 100\nReading package lists...\n" +
		"E: Failed to fetch http://deb.debian.org/debian-security/pool/updates/main/o/openssl/openssl_3.0.22-1%7edeb12u2.dsc  404  Not Found [IP: 203.0.113.80 80]\n" +
		"E: Failed to fetch http://x/openssl_3.0.22-1%7edeb12u2.debian.tar.xz  404  Not Found\nE: Failed to fetch some archives.")
	assert.Equal(t, "http://deb.debian.org/debian-security/pool/updates/main/o/openssl/openssl_3.0.22-1%7edeb12u2.dsc  404  Not Found [IP: 203.0.113.80 80]; http://x/openssl_3.0.22-1%7edeb12u2.debian.tar.xz  404  Not Found", aptFailures(err))
	assert.Equal(t, "apt-get: exit status 1", aptFailures(errors.New("apt-get: exit status 1\nmore")))
}

func TestNewerPackagesTakeCloudInitWithoutItsFirewalldConflict(t *testing.T) {
	pkgs, err := newerPackages()
	require.NoError(t, err)
	assert.Equal(t, []newerPackage{{Name: "cloud-init", DropConflicts: []string{"firewalld"}}}, pkgs)
	x, _ := arch.Lookup("x86_64")
	assert.NotContains(t, Packages(x), "cloud-init", "Debian 12's cloud-init would be installed beside the newer one")

	_, err = parseNewer("cloud-init drop-conflict=firewalld\n")
	assert.ErrorContains(t, err, `recipe/newer.txt line 1: unknown change "drop-conflict=firewalld"`)
	p, err := parseNewer("# c\n\nfoo drop-conflicts=a,b\nbar\n")
	require.NoError(t, err)
	assert.Equal(t, []newerPackage{{Name: "foo", DropConflicts: []string{"a", "b"}}, {Name: "bar"}}, p)
}

func TestNewerSourcesAreTheMainSuitesMirrorsForTheNextRelease(t *testing.T) {
	src := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.corp.example/debian bookworm main\n" +
		"deb http://mirror.corp.example/debian bookworm-updates main\n" +
		"deb http://mirror.corp.example/debian-security bookworm-security main\n"
	assert.Equal(t, "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.corp.example/debian trixie main\n", newerSources(src))
	assert.Empty(t, newerSources("deb http://x bookworm-security main\n"))
}

func TestEditControlDropsTheConflictAndMarksTheVersion(t *testing.T) {
	// cloud-init 25.1.4-1+deb13u1's control file, shortened.
	in := "Package: cloud-init\nVersion: 25.1.4-1+deb13u1\nArchitecture: all\n" +
		"Replaces: cloud-init-22.4.2\nDepends: eject, netcat-openbsd, python3:any\n" +
		"Conflicts: cloud-init-22.4.2, firewalld\nDescription: initialization system\n multi-line\n"
	out, dropped, err := editControl(in, []string{"firewalld"})
	require.NoError(t, err)
	assert.Equal(t, []string{"firewalld"}, dropped)
	assert.Equal(t, "Package: cloud-init\nVersion: 25.1.4-1+deb13u1+standin\nArchitecture: all\n"+
		"Replaces: cloud-init-22.4.2\nDepends: eject, netcat-openbsd, python3:any\n"+
		"Conflicts: cloud-init-22.4.2\nDescription: initialization system\n multi-line\n", out)

	out, _, err = editControl("Package: a\nVersion: 1\nConflicts: firewalld (<< 2)\n", []string{"firewalld"})
	require.NoError(t, err)
	assert.Equal(t, "Package: a\nVersion: 1+standin\n", out, "an emptied Conflicts field goes")

	_, _, err = editControl("Package: a\nVersion: 1\nConflicts: b\n", []string{"firewalld"})
	assert.ErrorContains(t, err, "no Conflicts on firewalld to drop: remove that change from recipe/newer.txt")
	_, _, err = editControl("Package: a\nConflicts: firewalld\n", []string{"firewalld"})
	assert.ErrorContains(t, err, "no Version field")
}
