package harness

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/unitcpu"
)

// Artifacts are uploaded by pipelines: none may hold a private key, though the user-data the
// harness injects carries the guest's SSH host key.
func TestArtifactsHoldNoPrivateKey(t *testing.T) {
	userKey, err := cloudinit.NewKeyPair("user")
	require.NoError(t, err)
	hostKey, err := cloudinit.NewKeyPair("host")
	require.NoError(t, err)
	seed := cloudinit.Seed{InstanceID: "i", Hostname: "h", User: "azlvmtest", UserKey: userKey, HostKey: hostKey}
	ud, err := seed.UserData()
	require.NoError(t, err)
	require.Contains(t, string(ud), "PRIVATE KEY", "the user-data carries the host key (the test's premise)")

	m := &Machine{dir: t.TempDir(), userData: ud, userKey: userKey, hostKey: hostKey}
	require.NoError(t, os.WriteFile(filepath.Join(m.dir, "console.log"), []byte("boot\n"+userKey.PrivatePEM), 0o600))
	dst := filepath.Join(t.TempDir(), "artifacts")
	require.NoError(t, m.saveArtifacts(dst))

	n := 0
	require.NoError(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "PRIVATE KEY", "%s holds a private key", p)
		assert.NotContains(t, string(b), strings.Split(strings.TrimSpace(hostKey.PrivatePEM), "\n")[1], "%s holds key material", p)
		return nil
	}))
	assert.GreaterOrEqual(t, n, 3, "console.log, user-data, boot-stages.txt")
	b, err := os.ReadFile(filepath.Join(dst, "user-data"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "<private key redacted by azl-vmtest>")
	assert.Contains(t, string(b), hostKey.PublicLine, "the public half stays: it says which key the guest had")
}

// A full disk while writing artifacts is reported (the run says its artifacts are incomplete)
// instead of silently losing them.
func TestArtifactsOnAFullDisk(t *testing.T) {
	dst := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dst).Run(); err != nil {
		t.Skipf("needs to mount a small tmpfs (root): %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dst).Run() })
	m := &Machine{dir: t.TempDir(), userData: []byte("#cloud-config\n")}
	require.NoError(t, os.WriteFile(filepath.Join(m.dir, "console.log"), make([]byte, 1<<20), 0o600))
	err := m.saveArtifacts(filepath.Join(dst, "test"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left on device")
}

// Each guest log is read with its own bound: a journal that never arrives costs only the
// journal, is named in the error, and the other logs are still written.
func TestArtifactLogsEachBoundedAndNamed(t *testing.T) {
	run := func(ctx context.Context, cmd string) (ssh.Result, error) {
		switch {
		case cmd == unitcpu.Command: // it reads the journal too, but only unit records
			return ssh.Result{Stdout: []byte("Id=cloud-init.service\nCPUUsageNSec=2500000000\n\n4.00 1.00\n1\n")}, nil
		case strings.Contains(cmd, "journalctl"):
			<-ctx.Done() // a journal too long to send in time
			return ssh.Result{ExitCode: -1}, ctx.Err()
		case strings.Contains(cmd, "cloud-init.log"):
			return ssh.Result{ExitCode: 1, Stderr: []byte("cat: /var/log/cloud-init.log: No such file or directory\n")}, nil
		case strings.Contains(cmd, "systemd-analyze plot"):
			return ssh.Result{Stdout: []byte("<svg/>\n")}, nil
		}
		return ssh.Result{Stdout: []byte("[    0.000000] Linux version 6.1\n")}, nil
	}
	written := map[string]string{}
	start := time.Now()
	errs := readArtifactLogs(run, 200*time.Millisecond, func(name, content string) { written[name] = content })
	assert.Less(t, time.Since(start), 2*time.Second)
	require.Len(t, errs, 2)
	assert.EqualError(t, errs[0], "journal.txt: the guest did not send it within 200ms")
	assert.Contains(t, errs[1].Error(), `cloud-init.log: "sudo cat /var/log/cloud-init.log" exited 1: cat: /var/log/cloud-init.log: No such file or directory`)
	assert.Equal(t, "[    0.000000] Linux version 6.1\n", written["dmesg.txt"], "the logs after the slow one are still written")
	assert.Equal(t, "<svg/>\n", written["boot-chart.svg"])
	assert.Equal(t, "guest CPU time by systemd unit since its boot: 3.0 s busy of 4.0 s up\n"+
		"    2.50 s  83.3%  cloud-init.service\n"+
		"    0.50 s  16.7%  (outside these units: the kernel and initramfs before the service manager, kernel threads, interrupts; unloaded units the journal did not show)\n",
		written["unit-cpu.txt"], "the CPU time by unit is written as a table")
	assert.Len(t, written, 3)
}

// A guest whose service manager keeps no CPU usage still gets its answer written, as sent, and
// the error says what to turn on.
func TestArtifactUnitCPUUnreadableWrittenAsSent(t *testing.T) {
	const sent = "Id=sshd.service\nCPUUsageNSec=[not set]\n\n4.00 1.00\n1\n"
	run := func(ctx context.Context, cmd string) (ssh.Result, error) {
		if cmd == unitcpu.Command {
			return ssh.Result{Stdout: []byte(sent)}, nil
		}
		return ssh.Result{Stdout: []byte("log\n")}, nil
	}
	written := map[string]string{}
	errs := readArtifactLogs(run, time.Second, func(name, content string) { written[name] = content })
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "unit-cpu.txt: written as the guest sent it: unitcpu: systemd keeps no CPU usage for the guest's 1 units: turn on DefaultCPUAccounting=yes")
	assert.Equal(t, sent, written["unit-cpu.txt"])
	assert.Equal(t, "log\n", written["journal.txt"])
}
