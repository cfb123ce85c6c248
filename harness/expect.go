package harness

import (
	"reflect"
	"testing"
)

// Want returns the profile's expectation v for key, or skips the test: with the profile's
// reason when it declares the key not promised, or naming the key when the profile is silent.
// A check never passes on a missing expectation.
func Want[T any](t testing.TB, m *Machine, key string, v T) T {
	t.Helper()
	SkipUnpromised(t, m, key)
	p := m.Profile()
	if rv := reflect.ValueOf(v); !rv.IsValid() || rv.IsZero() || (rv.Kind() == reflect.Slice && rv.Len() == 0) {
		t.Skipf("profile %s declares no expectation for %s", p.Name, key)
	}
	return v
}

// SkipUnpromised skips the test when the profile lists key under not_promised (with its reason).
// For keys whose empty value is itself an expectation (an empty allow-list).
func SkipUnpromised(t testing.TB, m *Machine, key string) {
	t.Helper()
	p := m.Profile()
	if reason, ok := p.Unpromised(key); ok {
		t.Skipf("profile %s does not promise %s: %s", p.Name, key, reason)
	}
}
