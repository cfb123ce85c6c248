package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestABIFailsWhenItsListingIsLost: symbols that could not be written must make the exit code
// 1, or the check would read the cut listing as a library that lost its symbols.
func TestABIFailsWhenItsListingIsLost(t *testing.T) {
	so := "libc.so.6"
	readOnly, err := os.Open(filepath.Join(t.TempDir(), "."))
	require.NoError(t, err)
	t.Cleanup(func() { _ = readOnly.Close() })
	stdout := os.Stdout
	t.Cleanup(func() { os.Stdout = stdout })

	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = devNull.Close() })
	os.Stdout = devNull
	if abi([]string{so}) != 0 {
		t.Skipf("needs %s on the host to list", so)
	}
	os.Stdout = readOnly // writes fail: a directory opened for reading
	assert.Equal(t, 1, abi([]string{so}))
}
