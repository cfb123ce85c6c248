package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestGetRandomWire(t *testing.T) {
	assert.Equal(t, []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 16}, getRandomCommand(16))
	// A TPM's answer: no sessions, 16 bytes, success, a TPM2B of 4 bytes.
	b, err := parseGetRandom([]byte{0x80, 0x01, 0, 0, 0, 16, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4})
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3, 4}, b)
	_, err = parseGetRandom([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01})
	assert.EqualError(t, err, "TPM2_GetRandom failed: response code 0x101")
	_, err = parseGetRandom([]byte{0x80, 0x01, 0, 0, 0, 20, 0, 0, 0, 0, 0, 4})
	assert.EqualError(t, err, "TPM response says 20 bytes, got 12")
	_, err = parseGetRandom([]byte{0x80, 0x01})
	assert.ErrorContains(t, err, "too short")
}

// TPM2_PCR_Extend as TPM 2.0 Part 3 lays it out: header, PCR handle, one password session
// with the empty password, a TPML_DIGEST_VALUES of one SHA-256 digest.
func TestPCRExtendWire(t *testing.T) {
	var d [32]byte
	for i := range d {
		d[i] = byte(i)
	}
	want := []byte{
		0x80, 0x02, 0, 0, 0, 65, 0, 0, 0x01, 0x82, // TPM_ST_SESSIONS, 65 bytes, TPM_CC_PCR_Extend
		0, 0, 0, 16, // PCR 16
		0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0, // 9 bytes of authorization: TPM_RS_PW, empty nonce, no attributes, empty password
		0, 0, 0, 1, 0, 0x0B, // one digest, TPM_ALG_SHA256
	}
	want = append(want, d[:]...)
	assert.Equal(t, want, pcrExtendCommand(16, d))
	// The answer to a PCR_Extend: sessions, 19 bytes, success, parameterSize 0 and an empty
	// session's nonce, attributes and hmac (nothing the probe reads but the code).
	assert.NoError(t, responseCode("TPM2_PCR_Extend", []byte{0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}))
	assert.EqualError(t, responseCode("TPM2_PCR_Extend", []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x07}), "TPM2_PCR_Extend failed: response code 0x907")
}

// The TPM device is opened blocking, where os.OpenFile makes a pollable descriptor
// non-blocking (then the kernel answers a TPM command asynchronously and a read at once finds
// nothing: EOF). A FIFO is pollable like a TPM device.
func TestTPMDeviceOpenedBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	nonblocking := func(f *os.File) bool { // not f.Fd(): it makes the descriptor blocking
		rc, err := f.SyscallConn()
		require.NoError(t, err)
		var fl int
		require.NoError(t, rc.Control(func(fd uintptr) { fl, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }))
		require.NoError(t, err)
		return fl&unix.O_NONBLOCK != 0
	}
	g, err := os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	defer g.Close()
	require.True(t, nonblocking(g), "os.OpenFile makes a pollable descriptor non-blocking (what this guards against)")
	f, err := openBlocking(fifo)
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, nonblocking(f), "the TPM device must be opened blocking")
}
