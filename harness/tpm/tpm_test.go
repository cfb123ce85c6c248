package tpm

import (
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// swtpm starts on a socket that exists before it does, answers on it, and is gone after Close.
func TestEmulatorLifetime(t *testing.T) {
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Skip("needs swtpm: run scripts/host-setup.sh")
	}
	e, err := Start(t.TempDir())
	require.NoError(t, err)
	c, err := net.DialTimeout("unix", e.Socket, 5*time.Second)
	require.NoError(t, err, "the control socket is there at once")
	c.Close()
	require.NoError(t, e.Exited())
	pid := e.Pid()
	e.Close()
	assert.Error(t, syscall.Kill(pid, 0), "swtpm %d is gone after Close", pid)
	assert.Error(t, e.Exited())
	e.Close() // twice is harmless
}

func TestMissingSwtpmNamesTheFix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(t.TempDir())
	assert.EqualError(t, err, "swtpm not found: a VM with a TPM needs it (run scripts/host-setup.sh as root, or apt-get install swtpm)")
}
