package fips

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// One VM for the read-only checks and the negotiation test.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// The guest's ssh client connects to its own sshd, pinning sshd's host key, with one cipher
// forced on the command line (which overrides the client's own configuration): sshd's answer
// shows whether it negotiates that cipher. BatchMode with no key of this user's: a negotiated
// connection ends at authentication.
func negotiate(cipher string) string {
	return `d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
for f in /etc/ssh/ssh_host_*_key.pub; do echo "127.0.0.1 $(sudo cut -d' ' -f1,2 "$f")"; done > "$d/known_hosts"
ssh -n -F /dev/null -c ` + cipher + ` -o BatchMode=yes -o IdentityFile="$d/none" -o UserKnownHostsFile="$d/known_hosts" -o ConnectTimeout=20 nobody@127.0.0.1 true 2>&1; echo "exit=$?"`
}

// TestSSHNegotiatesOnlyApprovedCiphers shows the approved list by behaviour: sshd refuses to
// negotiate a cipher outside the profile's approved list (ChaCha20-Poly1305 is not
// FIPS-approved) and negotiates an approved one.
func TestSSHNegotiatesOnlyApprovedCiphers(t *testing.T) {
	m := vm.Machine(t)
	if reason, ok := m.Profile().Unpromised("fips.ssh_approved"); ok {
		t.Skipf("needs a profile that limits sshd's algorithms: %s", reason)
	}
	approved, err := profile.Get[map[string][]string](m.Profile(), "fips.ssh_approved")
	require.NoError(t, err)
	const refused, allowed = "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"
	require.NotContains(t, approved["ciphers"], refused, "the test forces a cipher the profile does not approve")
	require.Contains(t, approved["ciphers"], allowed, "the test forces a cipher the profile approves")
	require.NoError(t, Negotiated(refused, false, m.MustRun(t, negotiate(refused))))
	require.NoError(t, Negotiated(allowed, true, m.MustRun(t, negotiate(allowed))))
}

// TestPostQuantumKex checks ssh offers the profile's post-quantum key exchange; where the
// profile does not promise one yet (ML-KEM is planned for 4.0) it reports what ssh offers
// instead, in its skip message: a report for the pipeline's summary, not a verdict.
func TestPostQuantumKex(t *testing.T) {
	m := vm.Machine(t)
	out := m.MustRun(t, "ssh -Q kex")
	if reason, ok := m.Profile().Unpromised("fips.pq_kex"); ok {
		t.Skipf("a report, not a check (%s): post-quantum key exchange offered by ssh: %s", reason, PQOffered(out))
	}
	want := harness.Want[string](t, m, "fips.pq_kex")
	require.NoError(t, PQKex(want, out))
}
