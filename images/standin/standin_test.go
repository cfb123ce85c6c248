package standin

import (
	"context"
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
	assert.Len(t, Key(x), 16)
	assert.Equal(t, Key(x), Key(x))
	assert.NotEqual(t, Key(x), Key(a))
	assert.Contains(t, ImagePath("/c", a), "/c/images/standin-aarch64-"+Key(a)+".qcow2")
}

func TestPackagesIncludeArchKernelAndGrub(t *testing.T) {
	a, _ := arch.Lookup("aarch64")
	p := Packages(a)
	assert.Contains(t, p, "linux-image-cloud-arm64")
	assert.Contains(t, p, "grub-efi-arm64-bin")
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
