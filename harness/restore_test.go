package harness

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh/sshtest"
)

// TestRefreshStepsTheClockToTheHost: a restored guest's refresh reads the guest's uptime, then
// as root steps its clock to the host's time (the uptime plus the offset measured at the read),
// writes the restore's marker and records when the first command answered. The fake guest runs
// on this host: its root shell is a sh that reads a fixed uptime and writes under a temporary
// folder instead of /proc and /run, and calls a fake date.
func TestRefreshStepsTheClockToTheHost(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "date"), []byte("#!/bin/sh\necho \"$@\" > "+dir+"/date-args\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "uptime"), []byte("100.00 50.00\n"), 0o644))
	q := qemu.ShellQuote
	srv := sshtest.NewServer(t, func(cmd string) string {
		switch cmd {
		case RootShellCommand:
			return "sed -u -e " + q("s#/run/azl-vmtest#"+dir+"#g") + " -e " + q("s#/proc/uptime#"+dir+"/uptime#g") +
				" | PATH=" + q(bin) + ":$PATH sh"
		case GuestPATH + "cat /proc/uptime":
			return "sleep 0.2; cat " + q(dir+"/uptime")
		}
		return "echo unexpected command >&2; exit 99"
	})
	m := &Machine{name: "t", started: time.Now(), logf: t.Logf,
		sshCfg: ssh.Config{Addr: srv.Addr, User: "u", Signer: srv.UserKey, HostKey: srv.HostKey.PublicKey()}}
	m.Stages.Restore = time.Millisecond // a restore: the refresh records its first command
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, m.dialSSH(ctx))
	t.Cleanup(m.dropClient)

	before := time.Now()
	require.NoError(t, m.refresh(ctx))
	after := time.Now()

	assert.Equal(t, []string{GuestPATH + "cat /proc/uptime", RootShellCommand}, srv.Commands(), "one uptime read, then one root shell")
	assert.Greater(t, m.Stages.FirstCommand, before.Sub(m.started)+200*time.Millisecond, "the first command answered after its 0.2 s")
	assert.Less(t, m.Stages.FirstCommand, after.Sub(m.started))
	id, err := os.ReadFile(dir + "/instance-id")
	require.NoError(t, err, "the restore's marker")
	assert.Len(t, m.instanceID, 32)
	assert.Equal(t, m.instanceID+"\n", string(id))
	args, err := os.ReadFile(dir + "/date-args")
	require.NoError(t, err, "the clock step")
	f := strings.Fields(string(args))
	require.Len(t, f, 3, "date -u -s @SECONDS: %q", args)
	assert.Equal(t, []string{"-u", "-s"}, f[:2])
	set, err := strconv.ParseFloat(strings.TrimPrefix(f[2], "@"), 64)
	require.NoError(t, err, "%q", args)
	// The fake uptime stands still, so the clock is set to the host's time at the read's middle:
	// between sending it and its answer (0.2 s later at least).
	assert.GreaterOrEqual(t, set, float64(before.UnixMilli())/1000+0.1-0.001, "%q", args)
	assert.LessOrEqual(t, set, float64(after.UnixMilli())/1000+0.001, "%q", args)
}
