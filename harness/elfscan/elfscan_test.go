package elfscan

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goBuild builds an empty Go program into dir/name with extra go build flags.
func goBuild(t *testing.T, dir, name string, flags ...string) string {
	t.Helper()
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module x\ngo 1.21\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644))
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	return out
}

// A PIE and a non-PIE executable are told apart; neither has a stack protector or FORTIFY
// (Go's linker uses neither); both have a non-executable stack.
func TestUnitInspect(t *testing.T) {
	dir := t.TempDir()
	pie := goBuild(t, dir, "pie", "-buildmode=pie")
	exe := goBuild(t, dir, "exe", "-buildmode=exe")
	fp, err := Inspect(pie)
	require.NoError(t, err)
	fe, err := Inspect(exe)
	require.NoError(t, err)
	assert.True(t, fp.Executable)
	assert.True(t, fe.Executable)
	assert.True(t, fp.Has[PIE], "a -buildmode=pie binary is PIE")
	assert.False(t, fe.Has[PIE], "a -buildmode=exe binary is not PIE")
	for _, f := range []Facts{fp, fe} {
		assert.True(t, f.Has[NXStack], f.Path)
		assert.False(t, f.Has[StackProtector], f.Path)
		assert.False(t, f.Has[Fortify], f.Path)
	}

	script := filepath.Join(dir, "script")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"+strings.Repeat("# padding\n", 10)), 0o755))
	_, err = Inspect(script)
	assert.ErrorIs(t, err, ErrNotProgram)

	// Scan: the hard link is read once, the symbolic link and the script not at all; a copy
	// that cannot be run and is not named as a library is no program, a copy named as one is.
	require.NoError(t, os.Link(pie, filepath.Join(dir, "pie-hardlink")))
	require.NoError(t, os.Symlink(exe, filepath.Join(dir, "exe-symlink")))
	b, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "exe-data"), b, 0o644))
	r := Scan(dir, filepath.Join(dir, "missing"))
	assert.Equal(t, 2, r.Executables)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "libexe.so.1"), b, 0o644))
	r = Scan(dir)
	assert.Equal(t, 3, r.Executables, "a file named as a library is read whatever its mode")
	assert.Equal(t, Share{Total: 3, Have: 1, Missing: []string{exe, filepath.Join(dir, "libexe.so.1")}}, r.Properties[PIE])
	require.NoError(t, os.Remove(filepath.Join(dir, "libexe.so.1")))
	r = Scan(dir)
	assert.Equal(t, 2, r.Executables)
	assert.Equal(t, 0, r.SharedObjects)
	assert.Equal(t, Share{Total: 2, Have: 1, Missing: []string{exe}}, r.Properties[PIE])
	assert.Equal(t, 2, r.Properties[NXStack].Have)
	assert.Equal(t, 50.0, r.Properties[PIE].Percent())
	assert.Equal(t, 100.0, Share{}.Percent())
}

// The C library exports versioned symbols and never lists what it imports from the loader.
func TestUnitExports(t *testing.T) {
	libc, err := FindLibrary("libc.so.6")
	require.NoError(t, err, "every glibc host has libc.so.6")
	syms, err := Exports(libc)
	require.NoError(t, err)
	joined := "\n" + strings.Join(syms, "\n") + "\n"
	assert.Contains(t, joined, "\nmalloc@GLIBC_2.", "malloc exported with its version")
	assert.NotContains(t, joined, "\n_dl_argv@", "libc imports _dl_argv from ld.so: not an export")
	_, err = FindLibrary("libdoes-not-exist.so.9")
	assert.ErrorContains(t, err, "libdoes-not-exist.so.9: not found in")
}
