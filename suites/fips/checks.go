// Package fips verifies the FIPS and crypto-policy promises: the kernel's FIPS mode and the
// command line that asks for it, the kernel's crypto self-tests, OpenSSL's active providers
// and what they refuse (a non-approved digest and cipher) or allow (approved ones), sshd's
// algorithms against the approved lists, the system crypto policy, and post-quantum key
// exchange in ssh. On a profile that does not promise FIPS every check asks for the opposite
// (FIPS off, no fips=1, MD5 and ChaCha20 work, the default provider), so the suite fails on a
// FIPS image where a non-FIPS one was expected as well as the other way round.
package fips

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

var (
	probeState = check.Probe{Name: "fips-state", Cmd: "echo fips_enabled=$(cat /proc/sys/crypto/fips_enabled 2>&1); echo cmdline=$(cat /proc/cmdline)"}
	// probeAlgorithms asks openssl for a non-approved and an approved digest and cipher; each
	// line says whether it worked. Keys and IVs are given in hex, so no KDF is involved.
	probeAlgorithms = check.Probe{Name: "openssl-algorithms", Cmd: `k=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f; iv=000102030405060708090a0b0c0d0e0f
for d in md5 sha256; do printf t | openssl dgst -$d >/dev/null 2>&1; echo "digest $d exit=$?"; done
for c in chacha20 aes-256-ctr; do printf t | openssl enc -$c -K $k -iv $iv >/dev/null 2>&1; echo "cipher $c exit=$?"; done`}
	// probeSSHD is the agents suite's probe (the same recorded answers serve both).
	probeSSHD = check.Probe{Name: "sshd-T", Cmd: "sudo sshd -T"}
)

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("fips.enabled", probeState,
		"the kernel's FIPS mode: `/proc/sys/crypto/fips_enabled` 1 and `fips=1` on the command line (or 0 and no `fips=1`)", Enabled),
	check.New("fips.cmdline_required", probeState, "these kernel arguments present (a FIPS boot's `fips=1`, `boot=` where /boot is separate)", CmdlineRequired),
	check.New("fips.kernel_selftests", check.Probe{Name: "proc-crypto", Cmd: "cat /proc/crypto"},
		"every algorithm in `/proc/crypto` passed its self-test", KernelSelftests),
	check.New("fips.openssl_providers", check.Probe{Name: "openssl-providers", Cmd: "openssl list -providers 2>&1"},
		"exactly these OpenSSL providers active (`openssl list -providers`)", Providers),
	check.New("fips.refuses_non_approved", probeAlgorithms,
		"openssl refuses MD5 and ChaCha20 while SHA-256 and AES-256-CTR work (or, FIPS off, all four work)", RefusesNonApproved),
	check.New("fips.ssh_approved", probeSSHD, "each of these `sshd -T` algorithm lists offers only approved algorithms", SSHApproved),
	check.New("fips.crypto_policy", check.Probe{Name: "crypto-policy", Cmd: "update-crypto-policies --show 2>&1; true"},
		"`update-crypto-policies --show`", CryptoPolicy),
}

// Enabled checks the kernel's FIPS mode both ways: fips_enabled and the fips=1 argument agree
// with the profile.
func Enabled(want bool, out string) error {
	cmdline := check.Field(out, "cmdline")
	if want {
		return check.Errors(
			check.Equal("/proc/sys/crypto/fips_enabled", "1", check.Field(out, "fips_enabled")),
			check.HasWord("kernel command line", "fips=1", cmdline),
		)
	}
	return check.Errors(
		check.Equal("/proc/sys/crypto/fips_enabled (FIPS not promised)", "0", check.Field(out, "fips_enabled")),
		check.LacksWord("kernel command line (FIPS not promised)", "fips=1", cmdline),
	)
}

// CmdlineRequired checks each required argument is on the kernel command line. An entry
// ending in "=" ("boot=") asks for the argument with any value.
func CmdlineRequired(required []string, out string) error {
	words := strings.Fields(check.Field(out, "cmdline"))
	var errs []error
	for _, r := range required {
		found := slices.ContainsFunc(words, func(w string) bool {
			return w == r || (strings.HasSuffix(r, "=") && strings.HasPrefix(w, r))
		})
		if !found {
			errs = append(errs, fmt.Errorf("kernel command line: expected %q, got %q", r, check.Field(out, "cmdline")))
		}
	}
	return check.Errors(errs...)
}

// KernelSelftests reads /proc/crypto (blocks of "key : value" lines, one per algorithm
// implementation) and fails, naming them, on implementations whose self-test did not pass.
func KernelSelftests(want bool, out string) error {
	if !want {
		return nil // nothing is promised about the self-tests (no profile says false)
	}
	var failed []string
	n := 0
	for _, block := range strings.Split(out, "\n\n") {
		name, driver, selftest := "", "", ""
		for _, l := range strings.Split(block, "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "name":
				name = strings.TrimSpace(v)
			case "driver":
				driver = strings.TrimSpace(v)
			case "selftest":
				selftest = strings.TrimSpace(v)
			}
		}
		if name == "" {
			continue
		}
		n++
		if selftest != "passed" {
			failed = append(failed, fmt.Sprintf("%s (%s): %q", name, driver, selftest))
		}
	}
	if n == 0 {
		return fmt.Errorf("/proc/crypto: expected algorithms with their self-test results, got none")
	}
	if len(failed) > 0 {
		return fmt.Errorf("/proc/crypto self-tests: expected all %d passed, got %d not passed: %s", n, len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// activeProviders reads `openssl list -providers`: a provider's name on a line indented by two
// spaces, then its fields indented by four, "status: active" among them.
func activeProviders(out string) []string {
	var active []string
	name := ""
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "    "):
			if strings.TrimSpace(l) == "status: active" && name != "" {
				active = append(active, name)
			}
		case strings.HasPrefix(l, "  "):
			name = strings.TrimSpace(l)
		}
	}
	return active
}

// Providers checks the active OpenSSL providers are exactly the profile's.
func Providers(want []string, out string) error {
	return check.Set("active OpenSSL providers", want, strings.Join(activeProviders(out), " "))
}

var exitLine = regexp.MustCompile(`(?m)^(digest|cipher) (\S+) exit=(\d+)$`)

// RefusesNonApproved checks what openssl does with MD5, SHA-256, ChaCha20 and AES-256-CTR.
// Refusing: MD5 and ChaCha20 fail, SHA-256 and AES work. Not refusing: all four work.
func RefusesNonApproved(want bool, out string) error {
	works := map[string]bool{}
	for _, m := range exitLine.FindAllStringSubmatch(out, -1) {
		works[m[2]] = m[3] == "0"
	}
	expect := map[string]bool{"md5": !want, "chacha20": !want, "sha256": true, "aes-256-ctr": true}
	var errs []error
	for _, alg := range slices.Sorted(maps.Keys(expect)) {
		got, ok := works[alg]
		word := map[bool]string{true: "works", false: "refused"}
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("openssl %s: expected %s, got no answer", alg, word[expect[alg]]))
		case got != expect[alg]:
			errs = append(errs, fmt.Errorf("openssl %s: expected %s, got %s", alg, word[expect[alg]], word[got]))
		}
	}
	return check.Errors(errs...)
}

// SSHApproved checks each listed `sshd -T` algorithm setting offers only approved algorithms.
func SSHApproved(approved map[string][]string, out string) error {
	cfg := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			cfg[strings.ToLower(f[0])] = f[1]
		}
	}
	var errs []error
	for _, setting := range slices.Sorted(maps.Keys(approved)) {
		got, ok := cfg[setting]
		if !ok {
			errs = append(errs, fmt.Errorf("sshd -T %s: expected only approved algorithms, got the setting not printed", setting))
			continue
		}
		var bad []string
		for _, alg := range strings.Split(got, ",") {
			if !slices.Contains(approved[setting], alg) {
				bad = append(bad, alg)
			}
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Errorf("sshd -T %s: expected only approved algorithms (%s), got also %s", setting, strings.Join(approved[setting], ","), strings.Join(bad, ",")))
		}
	}
	return check.Errors(errs...)
}

// CryptoPolicy checks the system-wide crypto policy's name.
func CryptoPolicy(want, out string) error {
	return check.Equal("update-crypto-policies --show", want, strings.TrimSpace(out))
}

// PQKex checks `ssh -Q kex` lists the post-quantum key exchange (TestPostQuantumKex).
func PQKex(want, out string) error {
	if slices.Contains(strings.Fields(out), want) {
		return nil
	}
	return fmt.Errorf("ssh -Q kex: expected %s offered, got %s", want, strings.Join(strings.Fields(out), ","))
}

// Negotiated judges negotiate's answer: a cipher sshd refuses ends the connection before
// authentication ("no matching cipher found"); one it accepts reaches it ("Permission denied").
func Negotiated(cipher string, want bool, out string) error {
	refused := strings.Contains(out, "no matching cipher found")
	authed := strings.Contains(out, "Permission denied")
	switch {
	case want && !authed:
		return fmt.Errorf("ssh -c %s to the guest's sshd: expected the cipher negotiated (the login then refused at authentication), got %q", cipher, strings.TrimSpace(out))
	case !want && !refused:
		return fmt.Errorf("ssh -c %s to the guest's sshd: expected \"no matching cipher found\", got %q", cipher, strings.TrimSpace(out))
	}
	return nil
}

// PQOffered lists the post-quantum (hybrid) key exchanges in `ssh -Q kex`, or "none".
func PQOffered(out string) string {
	var pq []string
	for _, k := range strings.Fields(out) {
		if strings.Contains(k, "mlkem") || strings.Contains(k, "sntrup") {
			pq = append(pq, k)
		}
	}
	if len(pq) == 0 {
		return "none"
	}
	return strings.Join(pq, ", ")
}
