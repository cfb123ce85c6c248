// Package hardening verifies the kernel's hardening promises: the kernel and BPF hardening
// sysctls, seccomp, and the kernel lockdown mode.
package hardening

import (
	"fmt"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("hardening.kernel_sysctls", check.Probe{Name: "kernel-sysctls", Cmd: "sysctl {hardening.kernel_sysctls}"},
		"each kernel and BPF hardening sysctl has the profile's value (kptr_restrict, dmesg_restrict, ASLR, unprivileged BPF, ...)", check.Sysctls),
	check.New("hardening.seccomp", check.Probe{Name: "seccomp", Cmd: "grep -E '^Seccomp' /proc/self/status; true"},
		"the kernel offers seccomp filtering (`Seccomp:` in `/proc/self/status`), or not", Seccomp),
	check.New("hardening.lockdown", check.Probe{Name: "lockdown", Cmd: "cat /sys/kernel/security/lockdown 2>/dev/null || echo '(no lockdown)'"},
		"the kernel lockdown mode (`/sys/kernel/security/lockdown`)", Lockdown),
}

// Seccomp checks /proc/self/status says whether the kernel has seccomp: a "Seccomp:" line.
func Seccomp(want bool, out string) error {
	has := check.Field(out, "Seccomp") != ""
	switch {
	case want && !has:
		return fmt.Errorf("seccomp: expected a Seccomp: line in /proc/self/status (a kernel with seccomp), got %q", strings.TrimSpace(out))
	case !want && has:
		return fmt.Errorf("seccomp: expected none (the profile promises no seccomp), got %q", strings.TrimSpace(out))
	}
	return nil
}

// Lockdown checks the selected mode, the bracketed one in "none [integrity] confidentiality".
func Lockdown(want, out string) error {
	got := "(no lockdown: the kernel has no lockdown LSM)"
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			got = strings.Trim(f, "[]")
		}
	}
	return check.Equal("kernel lockdown (/sys/kernel/security/lockdown)", want, got)
}
