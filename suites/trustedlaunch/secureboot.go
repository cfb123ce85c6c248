package trustedlaunch

// Secure Boot: the image's signed chain starts under UEFI firmware with Microsoft's keys
// enrolled (the harness's WithSecureBoot), the OS sees Secure Boot on, the kernel locks itself
// down, and it refuses a kernel module without a valid signature, which it loads without
// Secure Boot.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// efiGlobal is the EFI global variable GUID (SecureBoot, SetupMode).
const efiGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// probeState reads the firmware's Secure Boot variables (an efivarfs file is 4 bytes of
// attributes, then the value), mokutil's view of them and the kernel's lockdown mode.
var probeState = check.Probe{Name: "secureboot-state", Cmd: `v=/sys/firmware/efi/efivars
echo "secureboot=$(od -An -t u1 -j4 -N1 $v/SecureBoot-` + efiGlobal + ` 2>/dev/null | tr -d ' ')"
echo "setupmode=$(od -An -t u1 -j4 -N1 $v/SetupMode-` + efiGlobal + ` 2>/dev/null | tr -d ' ')"
echo "mokutil=$(mokutil --sb-state 2>&1 | head -n1)"
echo "lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null || echo '(no lockdown LSM)')"`}

// secureBootChecks are the Secure Boot rows of Checks, one per profile key.
var secureBootChecks = check.Table{
	check.New("secureboot.enabled", probeState, "the `SecureBoot` EFI variable (1, with `SetupMode` 0: keys enrolled) or 0", Enabled),
	check.New("secureboot.lockdown", probeState, "the kernel lockdown mode under Secure Boot (`/sys/kernel/security/lockdown`)", Lockdown),
}

// Enabled checks the SecureBoot variable both ways. On, the firmware must also be in user mode
// (SetupMode 0): in setup mode nothing is enforced.
func Enabled(want bool, out string) error {
	sb, setup := check.Field(out, "secureboot"), check.Field(out, "setupmode")
	if !want {
		if sb == "1" {
			return fmt.Errorf("Secure Boot (EFI variable SecureBoot): expected off, got on (1; mokutil: %q)", check.Field(out, "mokutil"))
		}
		return nil
	}
	if sb == "" {
		sb = "(no SecureBoot variable: not booted with UEFI, or efivarfs not mounted)"
	}
	return check.Errors(
		check.Equal("Secure Boot (EFI variable SecureBoot)", "1", sb),
		check.Equal("firmware setup mode (EFI variable SetupMode; 1 = no keys enrolled, nothing enforced)", "0", setup),
	)
}

// Lockdown checks the kernel's lockdown mode, the bracketed one in "none [integrity]
// confidentiality".
func Lockdown(want, out string) error {
	got, ok := check.Bracketed(check.Field(out, "lockdown"))
	if !ok {
		got = check.Field(out, "lockdown")
	}
	return check.Equal("kernel lockdown under Secure Boot (/sys/kernel/security/lockdown)", want, got)
}

// sigMagic ends a module with an appended signature (the kernel's MODULE_SIG_STRING): the
// module, the PKCS#7 signature, a 12-byte struct module_signature whose last 4 bytes are the
// signature's length (big-endian), then this.
const sigMagic = "~Module signature appended~\n"

// StripSignature returns the module without its appended signature, or an error when it has
// none or the trailer is inconsistent.
func StripSignature(ko []byte) ([]byte, error) {
	if !bytes.HasSuffix(ko, []byte(sigMagic)) {
		return nil, errors.New("the module has no appended signature (no \"~Module signature appended~\" trailer): the image's modules are not signed")
	}
	end := len(ko) - len(sigMagic)
	if end < 12 {
		return nil, errors.New("module signature trailer: too short")
	}
	sigLen := int(binary.BigEndian.Uint32(ko[end-4 : end]))
	start := end - 12 - sigLen
	if sigLen == 0 || start <= 0 {
		return nil, fmt.Errorf("module signature trailer: signature length %d does not fit a %d-byte module", sigLen, len(ko))
	}
	if !bytes.HasPrefix(ko, []byte("\x7fELF")) {
		return nil, errors.New("the module is not an ELF file")
	}
	return ko[:start], nil
}

// ModuleLoad judges one insmod attempt ("<insmod's output>", then insmod_exit=N and loaded=N,
// how many times the module then shows in /proc/modules). Refused means insmod failed and the
// module is not loaded; loaded means insmod succeeded and the module is there.
func ModuleLoad(what string, wantRefused bool, out string) error {
	code, loaded := check.Field(out, "insmod_exit"), check.Field(out, "loaded")
	msg := strings.TrimSpace(strings.Split(out, "insmod_exit=")[0])
	if code == "" || loaded == "" {
		return fmt.Errorf("%s: expected insmod_exit= and loaded= lines, got %q", what, out)
	}
	if wantRefused {
		if code == "0" || loaded != "0" {
			return fmt.Errorf("%s: expected refused (insmod fails, module not loaded), got insmod exit %s and the module loaded %s time(s) %q", what, code, loaded, msg)
		}
		return nil
	}
	if code != "0" || loaded == "0" {
		return fmt.Errorf("%s: expected loaded, got insmod exit %s (%q) and the module loaded %s time(s)", what, code, msg, loaded)
	}
	return nil
}
