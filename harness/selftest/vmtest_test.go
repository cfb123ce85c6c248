package selftest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVmtestCommand drives the contributor's tool: vmtest spawn keeps a VM and says how to
// reach it; from other processes vmtest ssh runs a command on it, vmtest list shows it, vmtest
// stop ends it (QEMU gone, state removed); a spawner killed with SIGKILL is reported and its
// state cleaned by the next list.
func TestVmtestCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vmtest")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vmtest")
	build.Dir = "../.."
	built, err := build.CombinedOutput()
	require.NoError(t, err, "%s", built)
	name := "selftest-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	vmtest := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}

	// spawn: up when it prints the ssh line.
	spawnUp := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "spawn", "-name", name)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		up := make(chan string, 1)
		go func() {
			var text strings.Builder
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				text.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "vmtest stop") {
					up <- text.String()
				}
			}
			close(up)
		}()
		select {
		case text, ok := <-up:
			require.True(t, ok, "vmtest spawn ended before the VM was up")
			t.Logf("vmtest spawn:\n%s", text)
			assert.Contains(t, text, "vmtest ssh "+name+" -- cat /etc/os-release")
			assert.Contains(t, text, "StrictHostKeyChecking=yes")
		case <-time.After(8 * time.Minute):
			t.Fatal("vmtest spawn: no VM within 8 minutes")
		}
		return cmd
	}
	spawn := spawnUp(name)

	out, err := vmtest("ssh", name, "--", "cat", "/etc/os-release")
	require.NoError(t, err, out)
	assert.Contains(t, out, "VARIANT_ID=azl-vmtest-standin")
	out, err = vmtest("ssh", name, "--", "exit", "7")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, out)
	assert.Equal(t, 7, ee.ExitCode(), "the guest command's exit code is vmtest ssh's")

	out, err = vmtest("list")
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^`+name+`\s+ssh://\S+\s+(x86_64|aarch64)\s+standin\s`, out)

	out, err = vmtest("stop", name)
	require.NoError(t, err, out)
	assert.Contains(t, out, name+" stopped")
	waited := make(chan error, 1)
	go func() { waited <- spawn.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("vmtest spawn did not exit after vmtest stop")
	}
	out, _ = vmtest("list")
	assert.NotContains(t, out, name)
	_, err = vmtest("ssh", name, "--", "true")
	assert.Error(t, err)

	// A spawner killed outright: its QEMU goes with it (the harness's lifetime rules), and the
	// next list reports and removes its state.
	killed := spawnUp(name + "-k")
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	_ = killed.Wait()
	out, _ = vmtest("list")
	assert.Contains(t, out, name+"-k: its spawner is gone")
	out, _ = vmtest("list")
	assert.NotContains(t, out, name+"-k")
}
