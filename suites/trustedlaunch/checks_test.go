package trustedlaunch

import (
	"encoding/binary"
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

func TestUnitEnabledBothWays(t *testing.T) {
	on := "secureboot=1\nsetupmode=0\nmokutil=SecureBoot enabled\nlockdown=none [integrity] confidentiality\n"
	off := "secureboot=0\nsetupmode=0\nmokutil=SecureBoot disabled\nlockdown=[none] integrity confidentiality\n"
	require.NoError(t, Enabled(true, on))
	require.NoError(t, Enabled(false, off))
	assert.EqualError(t, Enabled(true, off), `Secure Boot (EFI variable SecureBoot): expected "1", got "0"`)
	assert.ErrorContains(t, Enabled(false, on), "expected off, got on (1; mokutil: \"SecureBoot enabled\")")
	assert.ErrorContains(t, Enabled(true, "secureboot=1\nsetupmode=1\n"), `firmware setup mode (EFI variable SetupMode; 1 = no keys enrolled, nothing enforced): expected "0", got "1"`)
	assert.ErrorContains(t, Enabled(true, "secureboot=\nsetupmode=\n"), "no SecureBoot variable")
}

// module builds a fake signed module: an ELF header, a body, a signature of n bytes, the
// 12-byte module_signature with n in its last 4 bytes, and the magic.
func module(body string, n int) []byte {
	b := append([]byte("\x7fELF"), body...)
	b = append(b, make([]byte, n)...)
	var info [12]byte
	binary.BigEndian.PutUint32(info[8:], uint32(n))
	b = append(b, info[:]...)
	return append(b, sigMagic...)
}

func TestUnitStripSignature(t *testing.T) {
	got, err := StripSignature(module("payload", 400))
	require.NoError(t, err)
	assert.Equal(t, "\x7fELFpayload", string(got))

	_, err = StripSignature([]byte("\x7fELFpayload"))
	assert.ErrorContains(t, err, "no appended signature")
	bad := module("x", 10)
	binary.BigEndian.PutUint32(bad[len(bad)-len(sigMagic)-4:], 1<<20)
	_, err = StripSignature(bad)
	assert.ErrorContains(t, err, "does not fit")
	_, err = StripSignature(append([]byte("MZ"), module("x", 10)[4:]...))
	assert.ErrorContains(t, err, "not an ELF file")
}

func TestUnitModuleLoad(t *testing.T) {
	// Recorded on the stand-in (x86-64) under Secure Boot, and on the plain VM.
	refusedOut := "insmod: ERROR: could not insert module /tmp/vmtest-unsigned.ko: Key was rejected by service\ninsmod_exit=1\nloaded=0\n"
	loadedOut := "insmod_exit=0\nloaded=1\n"
	require.NoError(t, ModuleLoad("unsigned dummy under Secure Boot", true, refusedOut))
	require.NoError(t, ModuleLoad("unsigned dummy without Secure Boot", false, loadedOut))
	assert.EqualError(t, ModuleLoad("unsigned dummy under Secure Boot", true, loadedOut),
		`unsigned dummy under Secure Boot: expected refused (insmod fails, module not loaded), got insmod exit 0 and the module loaded 1 time(s) ""`)
	assert.ErrorContains(t, ModuleLoad("unsigned dummy without Secure Boot", false, refusedOut),
		`expected loaded, got insmod exit 1 ("insmod: ERROR: could not insert module /tmp/vmtest-unsigned.ko: Key was rejected by service")`)
	assert.ErrorContains(t, ModuleLoad("x", true, "sudo: command not found\n"), "expected insmod_exit= and loaded= lines")
}

func TestUnitRandom(t *testing.T) {
	require.NoError(t, Random(4, "0a1b2c3d\n", "9f8e7d6c\n"))
	assert.ErrorContains(t, Random(4, "0a1b2c3d", "0a1b2c3d"), "expected two different answers, got 0a1b2c3d twice")
	assert.ErrorContains(t, Random(4, "00000000", "9f8e7d6c"), "answer 1: expected random bytes, got zeros")
	assert.ErrorContains(t, Random(4, "0a1b", "9f8e7d6c"), "answer 1: expected 4 bytes, got 2")
	assert.ErrorContains(t, Random(4, "0a1b2c3d", "vmtest-probe: no TPM device: open /dev/tpm0: no such file or directory"), `answer 2: expected hex, got "vmtest-probe: no TPM device`)
}
