package tpm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

func TestUnitRandom(t *testing.T) {
	require.NoError(t, Random(4, "0a1b2c3d\n", "9f8e7d6c\n"))
	assert.ErrorContains(t, Random(4, "0a1b2c3d", "0a1b2c3d"), "expected two different answers, got 0a1b2c3d twice")
	assert.ErrorContains(t, Random(4, "00000000", "9f8e7d6c"), "answer 1: expected random bytes, got zeros")
	assert.ErrorContains(t, Random(4, "0a1b", "9f8e7d6c"), "answer 1: expected 4 bytes, got 2")
	assert.ErrorContains(t, Random(4, "0a1b2c3d", "vmtest-probe: no TPM device: open /dev/tpm0: no such file or directory"), `answer 2: expected hex, got "vmtest-probe: no TPM device`)
}
