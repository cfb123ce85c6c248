package ssh

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh/sshtest"
)

// execServer is a test SSH server running commands under the host's sh, and a client of it.
func execServer(t *testing.T) (*Client, *sshtest.Server) {
	srv := sshtest.NewServer(t, nil)
	c, err := Dial(context.Background(), Config{Addr: srv.Addr, User: "u", Signer: srv.UserKey, HostKey: srv.HostKey.PublicKey()})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, srv
}

func TestShellRunsBatchesInOneSession(t *testing.T) {
	c, srv := execServer(t)
	ctx := context.Background()
	sh, err := c.Shell(ctx, "sh")
	require.NoError(t, err)
	defer sh.Close()

	var shellPID string
	for i := 0; i < 3; i++ {
		res, err := sh.RunAll(ctx, "x=set-by-prefix; ", []string{
			"echo $x; echo err >&2",
			"cat; exit 4", // stdin is closed: the next batch is not eaten
			"echo $$",     // the kept shell's PID, the same in every batch
		})
		require.NoError(t, err, "batch %d", i)
		require.Len(t, res, 3)
		assert.Equal(t, "set-by-prefix\n", string(res[0].Stdout))
		assert.Equal(t, "err\n", string(res[0].Stderr))
		assert.Empty(t, res[1].Stdout)
		assert.Equal(t, 4, res[1].ExitCode)
		if i == 0 {
			shellPID = string(res[2].Stdout)
		}
		assert.Equal(t, shellPID, string(res[2].Stdout), "batch %d ran in the same shell", i)
	}
	assert.Equal(t, []string{"sh"}, srv.Commands(), "three batches, one session")

	// A batch whose output arrives in many writes, with a marker-like line inside it.
	res, err := sh.RunAll(ctx, "", []string{"i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo 'azl-vmtest-x E 0 0'"})
	require.NoError(t, err)
	assert.Equal(t, 2001, strings.Count(string(res[0].Stdout), "\n"))
}

func TestShellThatEndsSaysWhy(t *testing.T) {
	c, _ := execServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// What `sudo -n sh` does for a user who may not use sudo without a password.
	sh, err := c.Shell(ctx, "echo 'sudo: a password is required' >&2; exit 1")
	require.NoError(t, err, "the session opens; the shell then ends")
	_, err = sh.RunAll(ctx, "", []string{"dmesg"})
	require.ErrorIs(t, err, ErrShellEnded)
	assert.Contains(t, err.Error(), "exit 1")
	assert.Contains(t, err.Error(), "sudo: a password is required")
	_, err2 := sh.RunAll(ctx, "", []string{"true"})
	assert.Equal(t, err, err2, "an ended shell stays unusable")

	// A shell that exits in a batch: the batch fails, never half-parsed.
	sh, err = c.Shell(ctx, "sh")
	require.NoError(t, err)
	_, err = sh.RunAll(ctx, "", []string{"echo partial; kill $$"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the shell ended")
}

func TestShellBatchEndsWithItsContext(t *testing.T) {
	c, _ := execServer(t)
	sh, err := c.Shell(context.Background(), "sh")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = sh.RunAll(ctx, "", []string{"sleep 30"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	// The shell's state is unknown (sleep may still run): it is closed, not reused.
	_, err = sh.RunAll(context.Background(), "", []string{"true"})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestShellCloseDoesNotWaitForABatch(t *testing.T) {
	// The harness closes the shell when it drops the connection (a reboot) or stops the VM: a
	// batch under way (a guest that stopped answering) must not hold that up.
	c, _ := execServer(t)
	sh, err := c.Shell(context.Background(), "sh")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := sh.RunAll(context.Background(), "", []string{"sleep 30"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	sh.Close()
	assert.Less(t, time.Since(start), 500*time.Millisecond, "Close returns at once")
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "closed during the batch")
	case <-time.After(5 * time.Second):
		t.Fatal("the batch did not end when its shell was closed")
	}
}
