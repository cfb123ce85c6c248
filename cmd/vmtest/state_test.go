package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/runstate"
)

// A spawned VM is listed from the moment its name is taken, before it has an address (waiting
// for a VM slot, or booting): stop can end it; ssh says it is still starting. A holder that died
// is reported gone and its entry removed.
func TestStartingVMIsListedAndStoppable(t *testing.T) {
	t.Setenv("VMTEST_CACHE", t.TempDir())
	e, err := runstate.Create("bug")
	require.NoError(t, err)
	require.NoError(t, e.Write(state{Name: "bug", Pid: os.Getpid(), Started: time.Now()}))
	_, err = runstate.Create("bug")
	require.ErrorContains(t, err, "a VM named bug exists (vmtest list; vmtest stop bug)")

	all, err := load()
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, os.Getpid(), all[0].Pid, "stop signals this pid")
	_, err = find("bug")
	assert.ErrorContains(t, err, "VM bug is still starting")

	require.NoError(t, e.Write(state{Name: "bug", Target: "ssh://u@127.0.0.1:2222", Pid: os.Getpid(), Started: time.Now()}))
	s, err := find("bug")
	require.NoError(t, err)
	assert.Equal(t, "ssh://u@127.0.0.1:2222", s.Target)

	e.Release()
	_, err = find("bug")
	assert.ErrorContains(t, err, `no VM named "bug"`)

	// A holder that died leaves its folder with nobody holding its lock: reported and removed.
	root, err := runstate.Root()
	require.NoError(t, err)
	dead := filepath.Join(root, "dead")
	require.NoError(t, os.Mkdir(dead, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "state.json"), []byte(`{"Name":"dead","Pid":1}`), 0o600))
	_, gone, err := runstate.Load()
	require.NoError(t, err)
	assert.Equal(t, []string{"dead"}, gone)
	assert.NoDirExists(t, dead)
}
