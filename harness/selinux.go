package harness

import (
	"regexp"
	"testing"

	"github.com/azl-vmtest/azl-vmtest/harness/avc"
	"github.com/azl-vmtest/azl-vmtest/harness/profile"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// selinuxOn reports whether the profile says SELinux is on (enforcing or permissive): then every
// test answers for the denials the guest logged while it ran.
func (m *Machine) selinuxOn() bool {
	mode, err := profile.Get[string](m.profile, "selinux.mode")
	return err == nil && (mode == "enforcing" || mode == "permissive")
}

// ExpectDenial declares that the running test causes SELinux denials matching pattern (a
// regular expression on the audit record): the after-test check does not fail on them, and
// forgets the declaration (the next test on a shared VM answers for its own). A test that
// proves enforcement by provoking a denial declares it, and checks the record itself.
func ExpectDenial(t testing.TB, m *Machine, pattern string) {
	t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		t.Fatalf("ExpectDenial: %v", err)
	}
	m.mu.Lock()
	m.avcExpect = append(m.avcExpect, re)
	m.mu.Unlock()
}

// denialRecords parses avc.Command's result (nil when SELinux is off: not read).
func denialRecords(res *ssh.Result) ([]avc.Record, bool) {
	if res == nil || res.ExitCode != 0 {
		return nil, false
	}
	return avc.Parse(string(res.Stdout)), true
}

// skipBootDenials marks the denials logged so far (a shared VM's boot; res is what
// avc.Command printed then) as judged: they are the boot suite's, which boots its own VM.
func (m *Machine) skipBootDenials(res *ssh.Result) {
	recs, ok := denialRecords(res)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.avcSeen == nil {
		m.avcSeen = map[string]bool{}
	}
	for _, r := range recs {
		m.avcSeen[r.Key()] = true
	}
}

// takeExpected returns the denials the test declared and forgets them.
func (m *Machine) takeExpected() []*regexp.Regexp {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.avcExpect
	m.avcExpect = nil
	return e
}

// checkDenials fails t with the SELinux denial records logged since the last check (res is what
// avc.Command printed now) that neither the profile's allow-list nor the test's ExpectDenial
// covers.
func (m *Machine) checkDenials(t testing.TB, res *ssh.Result, expected []*regexp.Regexp) {
	t.Helper()
	if !m.selinuxOn() {
		return
	}
	recs, ok := denialRecords(res)
	if !ok {
		t.Errorf("SELinux denials: could not read the guest's audit and kernel logs (%s)", avc.Command)
		return
	}
	allowed, _ := profile.Get[map[string]string](m.profile, "selinux.allowed_denials")
	m.mu.Lock()
	if m.avcSeen == nil {
		m.avcSeen = map[string]bool{}
	}
	bad, err := avc.Denials(recs, m.avcSeen, allowed, expected)
	for _, r := range recs {
		m.avcSeen[r.Key()] = true
	}
	m.mu.Unlock()
	if err != nil {
		t.Error(err)
		return
	}
	if len(bad) > 0 {
		t.Error(avc.Report(bad, 20))
	}
}
