package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// TPM 2.0 wire constants (TPM 2.0 Library, Part 2).
const (
	tpmSTNoSessions = 0x8001
	tpmCCGetRandom  = 0x0000017B
)

// getRandomCommand is TPM2_GetRandom asking for n bytes.
func getRandomCommand(n int) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], tpmSTNoSessions)
	binary.BigEndian.PutUint32(b[2:], 12)
	binary.BigEndian.PutUint32(b[6:], tpmCCGetRandom)
	binary.BigEndian.PutUint16(b[10:], uint16(n))
	return b
}

// parseGetRandom reads TPM2_GetRandom's response: header, response code, then a TPM2B.
func parseGetRandom(r []byte) ([]byte, error) {
	if len(r) < 10 {
		return nil, fmt.Errorf("TPM response of %d bytes: too short", len(r))
	}
	if size := binary.BigEndian.Uint32(r[2:]); int(size) != len(r) {
		return nil, fmt.Errorf("TPM response says %d bytes, got %d", size, len(r))
	}
	if rc := binary.BigEndian.Uint32(r[6:]); rc != 0 {
		return nil, fmt.Errorf("TPM2_GetRandom failed: response code 0x%x", rc)
	}
	if len(r) < 12 {
		return nil, errors.New("TPM2_GetRandom: no digest in the response")
	}
	n := int(binary.BigEndian.Uint16(r[10:]))
	if len(r) < 12+n {
		return nil, fmt.Errorf("TPM2_GetRandom: %d bytes announced, %d sent", n, len(r)-12)
	}
	return r[12 : 12+n], nil
}

// tpmRandom prints n random bytes from the TPM (the resource manager /dev/tpmrm0, else
// /dev/tpm0) in hex: the TPM answers commands, not only that its device exists.
func tpmRandom(n int) int {
	var f *os.File
	var err error
	for _, dev := range []string{"/dev/tpmrm0", "/dev/tpm0"} {
		if f, err = openBlocking(dev); err == nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe: no TPM device:", err)
		return 1
	}
	defer f.Close()
	if _, err := f.Write(getRandomCommand(n)); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe: TPM2_GetRandom:", err)
		return 1
	}
	resp := make([]byte, 4096)
	k, err := f.Read(resp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe: reading the TPM's answer:", err)
		return 1
	}
	b, err := parseGetRandom(resp[:k])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
		return 1
	}
	fmt.Println(hex.EncodeToString(b))
	return 0
}

// openBlocking opens a device for reading and writing in blocking mode. os.OpenFile would not:
// Go puts a pollable descriptor (a TPM's is) in non-blocking mode for its poller, and the
// kernel then runs a TPM command asynchronously: a read right after the write finds no
// answer yet and returns 0 bytes, which Go reads as EOF (make test, a restored Trusted Launch
// VM under load: "reading the TPM's answer: EOF"). Blocking, the write runs the command and
// the read returns its answer.
func openBlocking(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
