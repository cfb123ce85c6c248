package hardening

import (
	"strings"
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

// The promise of no ASLR, judged on the stand-in's answers: its randomized addresses fail, the
// fixed ones of an image booted with randomize_va_space=0 pass.
func TestUnitASLROff(t *testing.T) {
	assert.ErrorContains(t, ASLR(false, fixtures.Read(t, "standin", "aslr", "good-x86_64.txt")), "expected fixed addresses")
	require.NoError(t, ASLR(false, fixtures.Read(t, "standin", "aslr", "broken-hardening.aslr-fixed-addresses.txt")))
	assert.ErrorContains(t, ASLR(true, "run=1\nrun=2\n"), "expected the stack and libc mappings of two runs")
}

// A profile naming a property the helper does not measure fails (a typo would check nothing),
// and so does a report that found no programs.
func TestUnitELFHardeningInput(t *testing.T) {
	good := fixtures.Read(t, "standin", "elf-hardening", "good-x86_64.txt")
	assert.ErrorContains(t, ELFHardening(map[string]float64{"relro": 90}, good), `the profile names "relro", which the helper does not measure`)
	assert.ErrorContains(t, ELFHardening(map[string]float64{"pie": 90}, `{"executables":0,"shared_objects":0,"properties":{}}`), "expected executables and shared objects under /usr, got 0 and 0")
	assert.ErrorContains(t, ELFHardening(map[string]float64{"pie": 90}, "vmtest-probe: not found"), "expected the helper's JSON report")
}

// The ABI lock on the stand-in's recorded baseline: the same symbols pass; one symbol gone, or a
// library gone, fails naming it; a new symbol is reported as added, not failed.
func TestUnitABILock(t *testing.T) {
	base := fixtures.Read(t, "standin", "abi", "baseline-x86_64.txt")
	added, err := ABI(base, base)
	require.NoError(t, err)
	assert.Empty(t, added)

	require.Contains(t, base, "\nSSL_CTX_new@OPENSSL_3.0.0\n")
	dropped := strings.Replace(base, "\nSSL_CTX_new@OPENSSL_3.0.0\n", "\n", 1)
	_, err = ABI(base, dropped)
	assert.ErrorContains(t, err, "expected every symbol of the release's baseline, got 1 missing: libssl.so.3: SSL_CTX_new@OPENSSL_3.0.0")

	start := strings.Index(base, "[libsystemd.so.0]")
	end := strings.Index(base, "[libssl.so.3]")
	require.True(t, start >= 0 && end > start, "the baseline lists libsystemd before libssl")
	_, err = ABI(base, base[:start]+base[end:])
	assert.ErrorContains(t, err, "libsystemd.so.0 (the whole library:")

	added, err = ABI(dropped, base)
	require.NoError(t, err)
	assert.Equal(t, []string{"libssl.so.3: SSL_CTX_new@OPENSSL_3.0.0"}, added)

	_, err = ABI("", base)
	assert.ErrorContains(t, err, "the baseline lists no library")
}
