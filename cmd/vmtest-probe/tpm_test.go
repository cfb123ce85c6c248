package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
