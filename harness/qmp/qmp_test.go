package qmp

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeQEMU serves QMP on a unix socket: the greeting, the capabilities handshake, then canned
// replies by command; "hang" is never answered.
func fakeQEMU(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		w := json.NewEncoder(c)
		_ = w.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []string{}}})
		// QMP is a JSON stream: go-qemu writes commands without newlines.
		dec := json.NewDecoder(c)
		for {
			var req struct {
				Execute string `json:"execute"`
			}
			if dec.Decode(&req) != nil {
				return
			}
			switch req.Execute {
			case "qmp_capabilities":
				_ = w.Encode(map[string]any{"return": map[string]any{}})
			case "query-status":
				_ = w.Encode(map[string]any{"event": "RESUME", "timestamp": map[string]int{"seconds": 1}})
				_ = w.Encode(map[string]any{"return": map[string]any{"running": true, "status": "running"}})
			case "hang":
			default:
				_ = w.Encode(map[string]any{"error": map[string]any{"class": "CommandNotFound", "desc": "The command " + req.Execute + " has not been found"}})
			}
		}
	}()
	return sock
}

func TestRunDecodesRepliesAndErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Connect(ctx, fakeQEMU(t))
	require.NoError(t, err)
	defer m.Close()

	st, err := m.QueryStatus(ctx)
	require.NoError(t, err)
	assert.Equal(t, Status{Running: true, Status: "running"}, st)

	err = m.Run(ctx, "no-such-command", nil, nil)
	var qe *Error
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, "no-such-command", qe.Command)
	assert.Contains(t, err.Error(), "has not been found")

	// A command QEMU never answers ends at the deadline and closes the monitor.
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	err = m.Run(short, "hang", nil, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, m.Run(ctx, "query-status", nil, nil), ErrClosed)
	m.Close() // twice is fine
}

func TestConnectGivesUpOnAMissingSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Connect(ctx, filepath.Join(t.TempDir(), "never.sock"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "never appeared")
	assert.Less(t, time.Since(start), 2*time.Second)
}

// A socket that accepts but never greets (a wedged QEMU) must not block Connect past ctx.
func TestConnectGivesUpOnASilentQEMU(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Connect(ctx, sock)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 3*time.Second)
}
