package qemu

import (
	"context"
	"fmt"
	"time"
)

// Save pauses the guest and writes its memory and device state to path with QMP migrate
// (exec:, which QEMU 7.2 offers; file: came later). The guest stays paused: the caller
// quits QEMU and keeps the overlay, which now matches the saved state exactly. The disk and
// the firmware variables are not in the stream (they are files).
func (i *Instance) Save(ctx context.Context, path string) error {
	if err := i.QMP.Run(ctx, "stop", nil, nil); err != nil {
		return err
	}
	// The default bandwidth cap (32 MiB/s) would make a 400 MB state take 12 s.
	if err := i.QMP.Run(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(64) << 30}, nil); err != nil {
		return err
	}
	if err := i.QMP.Run(ctx, "migrate", map[string]any{"uri": "exec:cat > " + ShellQuote(path)}, nil); err != nil {
		return err
	}
	for {
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := i.QMP.Run(ctx, "query-migrate", nil, &st); err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("saving the VM state to %s: migration %s: %s", path, st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("saving the VM state to %s: %w", path, ctx.Err())
		case <-i.exited:
			return fmt.Errorf("saving the VM state: %w", i.ExitError())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AwaitIncoming waits until QEMU (started with Config.Incoming) has loaded the saved state;
// the guest is then paused. A state QEMU cannot load makes it exit with the reason.
func (i *Instance) AwaitIncoming(ctx context.Context) error {
	for {
		st, err := i.QMP.QueryStatus(ctx)
		if err != nil {
			select {
			case <-i.exited:
				return fmt.Errorf("loading the saved state: %w", i.ExitError())
			default:
			}
			return err
		}
		switch st.Status {
		case "inmigrate":
		case "paused", "prelaunch", "postmigrate":
			return nil
		default:
			return fmt.Errorf("loading the saved state: QEMU is %q, expected paused", st.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loading the saved state: %w", ctx.Err())
		case <-i.exited:
			return fmt.Errorf("loading the saved state: %w", i.ExitError())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SwitchOverlay moves the paused guest's disk onto a new qcow2 overlay at path (QMP
// blockdev-snapshot-sync) whose backing file is the overlay it used so far: from now on that
// file is only read.
func (i *Instance) SwitchOverlay(ctx context.Context, path string) error {
	return i.QMP.Run(ctx, "blockdev-snapshot-sync", map[string]any{
		"device": "disk0", "snapshot-file": path, "format": "qcow2", "mode": "absolute-paths"}, nil)
}

// Pause stops the guest's CPUs.
func (i *Instance) Pause(ctx context.Context) error { return i.QMP.Run(ctx, "stop", nil, nil) }

// Resume runs a paused guest.
func (i *Instance) Resume(ctx context.Context) error { return i.QMP.Run(ctx, "cont", nil, nil) }
