package trustedlaunch

// TPM 2.0 (the harness's WithTPM: swtpm on the architecture's TPM device): the TPM's version,
// its resource-manager device, the firmware's measured-boot event log reaching the OS, PCR 7
// measured, and the TPM answering commands (random bytes).

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// probeSysfs reads what the kernel says of the TPM: its version, its devices, the size of the
// event log and PCR 7 of the SHA-256 bank (sysfs, kernel 5.12+).
var probeSysfs = check.Probe{Name: "tpm-sysfs", Cmd: `echo "version_major=$(cat /sys/class/tpm/tpm0/tpm_version_major 2>&1)"
echo "devices=$(for d in /dev/tpm0 /dev/tpmrm0; do [ -c $d ] && printf '%s ' $d; done)"
echo "event_log_bytes=$(sudo cat /sys/kernel/security/tpm0/binary_bios_measurements 2>/dev/null | wc -c)"
echo "pcr7=$(cat /sys/class/tpm/tpm0/pcr-sha256/7 2>&1)"`}

// tpmChecks are the TPM rows of Checks, one per profile key.
var tpmChecks = check.Table{
	check.New("tpm.version_major", probeSysfs, "`tpm_version_major`, with `/dev/tpm0` and the resource manager `/dev/tpmrm0`", VersionMajor),
	check.New("tpm.event_log", probeSysfs, "the firmware's measured-boot event log (`binary_bios_measurements`) not empty, or absent", EventLog),
	check.New("tpm.pcr7_measured", probeSysfs, "PCR 7 (SHA-256 bank) holds a measurement (not all zeros), or is all zeros", PCR7Measured),
}

// VersionMajor checks the TPM's version and that both its devices exist.
func VersionMajor(want int, out string) error {
	devs := check.Field(out, "devices")
	var errs []error
	errs = append(errs, check.Equal("TPM version (tpm_version_major)", fmt.Sprint(want), check.Field(out, "version_major")))
	for _, d := range []string{"/dev/tpm0", "/dev/tpmrm0"} {
		if !slices.Contains(strings.Fields(devs), d) {
			errs = append(errs, fmt.Errorf("TPM device %s: expected present, got only %q", d, devs))
		}
	}
	return check.Errors(errs...)
}

// EventLog checks the event log's size both ways.
func EventLog(want bool, out string) error {
	n := check.Field(out, "event_log_bytes")
	if want {
		if n == "" || n == "0" {
			return fmt.Errorf("measured-boot event log (/sys/kernel/security/tpm0/binary_bios_measurements): expected present and not empty, got %q bytes", n)
		}
		return nil
	}
	return check.Equal("measured-boot event log size (none promised)", "0", n)
}

// PCR7Measured checks PCR 7 both ways: a hex value not all zeros, or all zeros.
func PCR7Measured(want bool, out string) error {
	v := strings.ToLower(check.Field(out, "pcr7"))
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("PCR 7 (SHA-256): expected a 32-byte value, got %q", v)
	}
	zero := strings.Trim(v, "0") == ""
	switch {
	case want && zero:
		return fmt.Errorf("PCR 7 (SHA-256): expected a measurement (the firmware extends it at boot), got all zeros")
	case !want && !zero:
		return fmt.Errorf("PCR 7 (SHA-256): expected all zeros (nothing measured), got %s", v)
	}
	return nil
}

// Random checks two answers of TPM2_GetRandom (hex, one a line): n bytes each, not all zeros,
// and not equal.
func Random(n int, first, second string) error {
	var errs []error
	vals := [2][]byte{}
	for i, s := range []string{first, second} {
		b, err := hex.DecodeString(strings.TrimSpace(s))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("TPM2_GetRandom answer %d: expected hex, got %q", i+1, strings.TrimSpace(s)))
		case len(b) != n:
			errs = append(errs, fmt.Errorf("TPM2_GetRandom answer %d: expected %d bytes, got %d", i+1, n, len(b)))
		case strings.Trim(hex.EncodeToString(b), "0") == "":
			errs = append(errs, fmt.Errorf("TPM2_GetRandom answer %d: expected random bytes, got zeros", i+1))
		}
		vals[i] = b
	}
	if len(errs) == 0 && string(vals[0]) == string(vals[1]) {
		errs = append(errs, fmt.Errorf("TPM2_GetRandom: expected two different answers, got %x twice", vals[0]))
	}
	return check.Errors(errs...)
}
