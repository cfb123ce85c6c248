package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestCloudInitRecord judges cloudInitRecordCmd's output as recorded from guests: only a
// result.json without any error is a clean finish read without `cloud-init status`.
func TestCloudInitRecord(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "cloudinit", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		file        string
		done, clean bool
		ago         time.Duration // how long before the guest's date modules-final finished; 0: unknown
	}{
		// Recorded from a VM restored from a saved state: its status.json keeps the saving boot's times.
		{file: "done.txt", done: true, clean: true, ago: 57889492 * time.Millisecond},
		{file: "running.txt"}, // status.json without result.json: still running
		{file: "absent.txt"},  // no record at all: disabled, not installed or not in the boot's jobs
		{file: "errors.txt", done: true, ago: 1230 * time.Millisecond},            // a stage failed
		{file: "recoverable.txt", done: true, ago: 1230 * time.Millisecond},       // cloud-init >= 23.4: recoverable errors (a deprecated key)
		{file: "recoverable-stage.txt", done: true, ago: 1230 * time.Millisecond}, // the same, filed under its stage only
		{file: "failed-unit.txt", done: true, ago: 1230 * time.Millisecond},       // no error recorded, a cloud-init unit failed
		{file: "other-stage.txt", done: true, ago: 57889492 * time.Millisecond},   // done.txt with an error under a stage no check names (modules-init)
		{file: "corrupt.txt"},                           // a truncated record is no record
		{file: "no-clock.txt", done: true, clean: true}, // no date +%N: when it finished is unknown
	} {
		done, clean, ago := cloudInitRecord(read(c.file))
		assert.Equal(t, c.done, done, "%s: done", c.file)
		assert.Equal(t, c.clean, clean, "%s: clean", c.file)
		assert.InDelta(t, c.ago, ago, float64(time.Millisecond), "%s: finished ago", c.file)
	}
}
