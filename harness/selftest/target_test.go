package selftest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/suites/boot"
)

// TestSSHTargetRunsTheBootSuite boots the stand-in with the QEMU target, then runs the boot
// suite against it again through the ssh target, in a child go test given only its address,
// login key and host key (VMTEST_TARGET, VMTEST_SSH_KEY, VMTEST_SSH_HOST_KEY): every check
// row has the outcome it has when judged here on the QEMU machine, the kernel log check
// passes, and the console check skips, naming what the ssh target lacks.
func TestSSHTargetRunsTheBootSuite(t *testing.T) {
	m := harness.Boot(t)
	access, err := m.WriteSSHAccess(t.TempDir())
	require.NoError(t, err)
	bootID, err := m.BootID(t.Context())
	require.NoError(t, err)

	// What each row gives on the QEMU machine.
	want := map[string]string{}
	for key, outcome := range harness.Outcomes(t, m, boot.Checks) {
		want["TestChecks/"+key] = outcome
	}
	want["TestNoConsoleTrouble"] = "skip"
	want["TestNoKernelLogTrouble"] = "pass"

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-json", "-run", "^(TestChecks|TestNoConsoleTrouble|TestNoKernelLogTrouble)$", "./suites/boot/")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), access.Env()...)
	cmd.Env = append(cmd.Env, "VMTEST_ARTIFACTS="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()

	got := map[string]string{}
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		text.WriteString(ev.Output)
		if ev.Test != "" && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip") {
			got[ev.Test] = ev.Action
		}
	}
	log := text.String()
	t.Logf("boot suite through %s: %v\n%s", access.Target, got, check.LastLines(log+stderr.String(), 40))
	for test, w := range want {
		assert.Equal(t, w, got[test], "%s through the ssh target (QEMU target: %s)", test, w)
	}
	if !t.Failed() {
		assert.NoError(t, runErr, "the child go test")
	}
	assert.Contains(t, log, "target "+access.Target, "the child ran against the ssh target")
	assert.Contains(t, log, "needs the serial console: target "+access.Target+" has none")

	// The same machine, not a new one: same boot.
	after, err := m.BootID(t.Context())
	require.NoError(t, err)
	assert.Equal(t, bootID, after)
}

// TestSSHTargetPinsTheHostKey: the ssh target refuses a machine whose host key is not the
// pinned one, at once and saying so.
func TestSSHTargetPinsTheHostKey(t *testing.T) {
	m := harness.Boot(t)
	access, err := m.WriteSSHAccess(t.TempDir())
	require.NoError(t, err)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // another machine's host key, of the same type
	require.NoError(t, err)
	otherKey, err := gossh.NewPublicKey(&k.PublicKey)
	require.NoError(t, err)
	t.Setenv("VMTEST_TARGET", access.Target)
	t.Setenv("VMTEST_SSH_KEY", access.KeyFile)
	t.Setenv("VMTEST_SSH_HOST_KEY", string(gossh.MarshalAuthorizedKey(otherKey)))
	start := time.Now()
	wrong, err := harness.Open(t.Context(), "wrong-host-key")
	if wrong != nil {
		wrong.Close()
	}
	require.Error(t, err, "a machine presenting another host key must not be accepted")
	assert.Contains(t, err.Error(), "host key mismatch")
	assert.Contains(t, err.Error(), "VMTEST_SSH_HOST_KEY")
	assert.Less(t, time.Since(start), 10*time.Second, "refused at once, not after the boot timeout")

	// The right host key: the same call reaches it.
	t.Setenv("VMTEST_SSH_HOST_KEY", access.HostKeyLine)
	right, err := harness.Open(t.Context(), "right-host-key")
	require.NoError(t, err)
	defer right.Close()
	assert.Equal(t, "ssh", right.Target().Kind)
	assert.Equal(t, "standin", right.Profile().Name)
}
