// Package qmp is the one place that talks QMP to QEMU (through go-qemu): every command carries a
// context deadline, and QMP errors come back as Go errors with their class.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Monitor is a QMP connection.
type Monitor struct {
	mu       sync.Mutex
	m        *qmp.SocketMonitor
	panicked chan struct{}
}

func (m *Monitor) conn() *qmp.SocketMonitor {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

// Connect waits for QEMU's QMP socket to appear and completes the handshake. go-qemu's Connect
// can block forever (go-qemu issue #214), so it runs under ctx and is abandoned on expiry.
func Connect(ctx context.Context, socket string) (*Monitor, error) {
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("QMP socket %s never appeared: %w", socket, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	var mon *qmp.SocketMonitor
	var err error
	for {
		mon, err = qmp.NewSocketMonitor("unix", socket, 2*time.Second)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dialing QMP %s: %w", socket, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	done := make(chan error, 1)
	go func() { done <- mon.Connect() }()
	select {
	case err := <-done:
		if err != nil {
			_ = mon.Disconnect()
			return nil, fmt.Errorf("QMP handshake on %s: %w", socket, err)
		}
		m := &Monitor{m: mon, panicked: make(chan struct{})}
		m.watch(mon)
		return m, nil
	case <-ctx.Done():
		_ = mon.Disconnect()
		return nil, fmt.Errorf("QMP handshake on %s: %w", socket, ctx.Err())
	}
}

// watch reads QEMU's events for the monitor's lifetime (go-qemu blocks its reader until they
// are taken) and closes panicked on GUEST_PANICKED.
func (m *Monitor) watch(mon *qmp.SocketMonitor) {
	events, err := mon.Events(context.Background())
	if err != nil {
		return
	}
	go func() {
		once := false
		for e := range events {
			if e.Event == "GUEST_PANICKED" && !once {
				once = true
				close(m.panicked)
			}
		}
	}()
}

// Panicked is closed when QEMU reported GUEST_PANICKED (a guest with a pvpanic driver
// panicked). A closed or nil monitor never reports.
func (m *Monitor) Panicked() <-chan struct{} {
	if m == nil || m.panicked == nil {
		return nil
	}
	return m.panicked
}

// Error is a QMP error reply (go-qemu keeps only its description, not its class).
type Error struct {
	Command, Desc string
}

func (e *Error) Error() string { return fmt.Sprintf("QMP %s: %s", e.Command, e.Desc) }

// ErrClosed is returned once the monitor was closed (QEMU exited or a deadline broke it).
var ErrClosed = errors.New("QMP connection closed")

// Run executes command with args (nil for none) and decodes the "return" value into out (nil
// to discard). The library's own error (class dropped) is replaced by the decoded reply.
func (m *Monitor) Run(ctx context.Context, command string, args, out any) error {
	conn := m.conn()
	if conn == nil {
		return ErrClosed
	}
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	type result struct {
		raw []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		raw, err := conn.Run(b)
		ch <- result{raw, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		// The library cannot cancel a command: drop the connection so nothing waits on it.
		m.Close()
		return fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
	if r.err != nil {
		return &Error{Command: command, Desc: r.err.Error()}
	}
	var reply struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(r.raw, &reply); err != nil {
		return fmt.Errorf("QMP %s: decoding reply %q: %w", command, r.raw, err)
	}
	if out != nil && len(reply.Return) > 0 {
		if err := json.Unmarshal(reply.Return, out); err != nil {
			return fmt.Errorf("QMP %s: decoding return %s: %w", command, reply.Return, err)
		}
	}
	return nil
}

// Status is query-status's reply.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus returns the VM's run state (running, paused, shutdown, guest-panicked, ...).
func (m *Monitor) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := m.Run(ctx, "query-status", nil, &s)
	return s, err
}

// Close drops the connection. It is safe to call more than once.
func (m *Monitor) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	mm := m.m
	m.m = nil
	m.mu.Unlock()
	if mm != nil {
		_ = mm.Disconnect()
	}
}
