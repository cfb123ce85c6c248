package hardening

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

// The promise of no seccomp, judged on the stand-in's answer (it has seccomp).
func TestUnitSeccompOff(t *testing.T) {
	require.NoError(t, Seccomp(false, ""))
	assert.ErrorContains(t, Seccomp(false, fixtures.Read(t, "standin", "seccomp", "good-x86_64.txt")), "expected none (the profile promises no seccomp)")
}
