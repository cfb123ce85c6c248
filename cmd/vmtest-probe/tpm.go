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
	tpmSTSessions   = 0x8002
	tpmCCGetRandom  = 0x0000017B
	tpmCCPCRExtend  = 0x00000182
	tpmRSPW         = 0x40000009 // the password authorization session
	tpmAlgSHA256    = 0x000B
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

// pcrExtendCommand is TPM2_PCR_Extend of PCR pcr with one SHA-256 digest, authorized by a
// password session with the empty password (a PCR's authValue is empty unless set).
func pcrExtendCommand(pcr int, digest [32]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, tpmSTSessions)
	b = binary.BigEndian.AppendUint32(b, 0) // commandSize, set below
	b = binary.BigEndian.AppendUint32(b, tpmCCPCRExtend)
	b = binary.BigEndian.AppendUint32(b, uint32(pcr)) // pcrHandle
	b = binary.BigEndian.AppendUint32(b, 9)           // authorizationSize
	b = binary.BigEndian.AppendUint32(b, tpmRSPW)     // sessionHandle
	b = append(b, 0, 0, 0, 0, 0)                      // empty nonce, no attributes, empty hmac
	b = binary.BigEndian.AppendUint32(b, 1)           // one digest
	b = binary.BigEndian.AppendUint16(b, tpmAlgSHA256)
	b = append(b, digest[:]...)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)))
	return b
}

// responseCode checks a TPM response's header: its size, then its code (0 is success).
func responseCode(command string, r []byte) error {
	if len(r) < 10 {
		return fmt.Errorf("TPM response of %d bytes: too short", len(r))
	}
	if size := binary.BigEndian.Uint32(r[2:]); int(size) != len(r) {
		return fmt.Errorf("TPM response says %d bytes, got %d", size, len(r))
	}
	if rc := binary.BigEndian.Uint32(r[6:]); rc != 0 {
		return fmt.Errorf("%s failed: response code 0x%x", command, rc)
	}
	return nil
}

// parseGetRandom reads TPM2_GetRandom's response: header, response code, then a TPM2B.
func parseGetRandom(r []byte) ([]byte, error) {
	if err := responseCode("TPM2_GetRandom", r); err != nil {
		return nil, err
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

// tpmRandom prints n random bytes from the TPM in hex: the TPM answers commands, not only
// that its device exists.
func tpmRandom(n int) int {
	resp, err := transact(getRandomCommand(n))
	if err == nil {
		var b []byte
		if b, err = parseGetRandom(resp); err == nil {
			fmt.Println(hex.EncodeToString(b))
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
	return 1
}

// tpmPCRExtend extends PCR pcr with the SHA-256 digest given in hex.
func tpmPCRExtend(pcr int, digestHex string) int {
	var d [32]byte
	b, err := hex.DecodeString(digestHex)
	if err != nil || len(b) != len(d) {
		fmt.Fprintf(os.Stderr, "vmtest-probe: tpm-pcr-extend: %q is not a SHA-256 digest in hex (64 digits)\n", digestHex)
		return 2
	}
	copy(d[:], b)
	resp, err := transact(pcrExtendCommand(pcr, d))
	if err == nil {
		err = responseCode("TPM2_PCR_Extend", resp)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-probe:", err)
		return 1
	}
	return 0
}

// transact sends one command to the TPM (the resource manager /dev/tpmrm0, else /dev/tpm0)
// and returns its answer.
func transact(cmd []byte) ([]byte, error) {
	var f *os.File
	var err error
	for _, dev := range []string{"/dev/tpmrm0", "/dev/tpm0"} {
		if f, err = openBlocking(dev); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("no TPM device: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(cmd); err != nil {
		return nil, fmt.Errorf("sending the command to %s: %w", f.Name(), err)
	}
	resp := make([]byte, 4096)
	k, err := f.Read(resp)
	if err != nil {
		return nil, fmt.Errorf("reading the TPM's answer: %w", err)
	}
	return resp[:k], nil
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
