package ssh

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The batch script runs here under the host's sh: the same POSIX shell code a guest runs.
func TestBatchKeepsProbesApart(t *testing.T) {
	cmds := []string{
		"echo one; echo err-one >&2",
		"exit 3",
		"printf 'no newline'",
		"echo 'line with azl-vmtest-tok 0 0 0 0 inside'; cat", // stdin is closed
		"exit 0; echo never", // exit ends only this probe
		"printf '%s' \"$(head -c 3000 /dev/zero | tr '\\0' x)\"; false", // big output, then failure
	}
	cmd := exec.Command("sh", "-c", BatchScript(`PATH="$PATH:/usr/sbin"; `, cmds, "azl-vmtest-tok"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err)
	res, err := ParseBatch(out, stderr.Bytes(), "azl-vmtest-tok", len(cmds))
	require.NoError(t, err)
	require.Len(t, res, len(cmds))
	assert.Equal(t, "one\n", string(res[0].Stdout))
	assert.Equal(t, "err-one\n", string(res[0].Stderr))
	assert.Equal(t, 0, res[0].ExitCode)
	assert.Equal(t, 3, res[1].ExitCode)
	assert.Equal(t, "no newline", string(res[2].Stdout))
	assert.Equal(t, "line with azl-vmtest-tok 0 0 0 0 inside\n", string(res[3].Stdout))
	assert.Equal(t, 0, res[4].ExitCode)
	assert.Empty(t, res[4].Stdout)
	assert.Len(t, res[5].Stdout, 3000)
	assert.Equal(t, 1, res[5].ExitCode)
}

func TestParseBatchRefusesTruncatedOutput(t *testing.T) {
	errs := []byte("tok B 0\n\ntok E 0\n")
	_, err := ParseBatch([]byte("tok B 0\nshort"), errs, "tok", 1)
	assert.ErrorContains(t, err, "truncated")
	_, err = ParseBatch([]byte("tok B 0\nx\ntok E 0 0\n"), errs, "tok", 2)
	assert.ErrorContains(t, err, "expected the start of probe 1")
	_, err = ParseBatch([]byte("other B 0\n"), errs, "tok", 1)
	assert.ErrorContains(t, err, "expected the start of probe 0")
	_, err = ParseBatch([]byte("tok B 0\nx\ntok E 0 zz\n"), errs, "tok", 1)
	assert.ErrorContains(t, err, "exit code")
}

func TestOutputIsBounded(t *testing.T) {
	var b syncBuffer
	chunk := make([]byte, 1<<20)
	for i := 0; i < MaxOutput>>20+3; i++ {
		n, err := b.Write(chunk)
		require.NoError(t, err, "a full buffer must not fail the session's writer")
		require.Equal(t, len(chunk), n)
	}
	assert.Len(t, b.Bytes(), MaxOutput)
	assert.True(t, b.dropped())
}
