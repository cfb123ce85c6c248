package harness

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStopAllWaitsForAMachineBeingClosed: a program that stops its VM on the same signal the
// harness's handler gets (vmtest spawn) may already be in Close when the handler looks for
// machines to stop; the handler must still wait for that Close before the process exits, or
// the VM's folder is left behind (seen in make test: vmtest spawn stopped by vmtest stop).
func TestStopAllWaitsForAMachineBeingClosed(t *testing.T) {
	dir, lock, err := newPrivateDir("t")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Close waits for the provisioning it cancels: that holds it at its start here.
	m := &Machine{name: "t", dir: dir, dirLock: lock, cancelProvision: func() {}}
	m.provisioning.Add(1)
	register(m)

	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	require.Eventually(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.closed }, 5*time.Second, time.Millisecond)

	stopped := make(chan struct{})
	go func() { stopAll(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stopAll returned while a machine was still being closed: the process would exit with its folder left")
	case <-time.After(300 * time.Millisecond):
	}
	m.provisioning.Done()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stopAll did not return once the machine was closed")
	}
	assert.NoDirExists(t, dir, "the folder is gone when stopAll returns")
	<-closed
}
