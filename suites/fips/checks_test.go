package fips

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

// sshd's two answers to a forced cipher, as the guest's ssh client prints them.
const (
	sshNoCipher = "Unable to negotiate with 127.0.0.1 port 22: no matching cipher found. Their offer: aes256-gcm@openssh.com,aes256-ctr,aes128-gcm@openssh.com,aes128-ctr\r\nexit=255\n"
	sshAuthFail = "nobody@127.0.0.1: Permission denied (publickey).\r\nexit=255\n"
)

func TestUnitNegotiated(t *testing.T) {
	require.NoError(t, Negotiated("chacha20-poly1305@openssh.com", false, sshNoCipher))
	require.NoError(t, Negotiated("aes256-gcm@openssh.com", true, sshAuthFail))
	// A non-FIPS sshd negotiates ChaCha20; a broken client or pinning never reaches sshd.
	assert.ErrorContains(t, Negotiated("chacha20-poly1305@openssh.com", false, sshAuthFail), `expected "no matching cipher found", got "nobody@127.0.0.1: Permission denied (publickey).`)
	assert.ErrorContains(t, Negotiated("aes256-gcm@openssh.com", true, sshNoCipher), "expected the cipher negotiated")
	assert.ErrorContains(t, Negotiated("aes256-gcm@openssh.com", true, "Host key verification failed.\r\nexit=255"), `got "Host key verification failed.`)
}

// `ssh -Q kex` of Debian 12's OpenSSH 9.2 (recorded on the stand-in), and of an OpenSSH with
// ML-KEM (10.0's list).
const (
	kexDebian12 = "diffie-hellman-group1-sha1\ndiffie-hellman-group14-sha1\ndiffie-hellman-group14-sha256\ndiffie-hellman-group16-sha512\ndiffie-hellman-group18-sha512\ndiffie-hellman-group-exchange-sha1\ndiffie-hellman-group-exchange-sha256\necdh-sha2-nistp256\necdh-sha2-nistp384\necdh-sha2-nistp521\ncurve25519-sha256\ncurve25519-sha256@libssh.org\nsntrup761x25519-sha512\nsntrup761x25519-sha512@openssh.com\n"
	kexMLKEM    = "diffie-hellman-group14-sha256\necdh-sha2-nistp256\ncurve25519-sha256\nsntrup761x25519-sha512\nmlkem768x25519-sha256\n"
)

func TestUnitPQKex(t *testing.T) {
	require.NoError(t, PQKex("mlkem768x25519-sha256", kexMLKEM))
	assert.ErrorContains(t, PQKex("mlkem768x25519-sha256", kexDebian12), "ssh -Q kex: expected mlkem768x25519-sha256 offered, got diffie-hellman-group1-sha1,")
	assert.Equal(t, "sntrup761x25519-sha512, sntrup761x25519-sha512@openssh.com", PQOffered(kexDebian12))
	assert.Equal(t, "sntrup761x25519-sha512, mlkem768x25519-sha256", PQOffered(kexMLKEM))
	assert.Equal(t, "none", PQOffered("ecdh-sha2-nistp256\n"))
}
