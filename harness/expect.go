package harness

import (
	"errors"
	"testing"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// Want returns the machine's profile value for key (profile.Get: a yes/no key reads as bool):
// the one path from a key to the value a traffic, hot-plug or reboot test compares with (table
// checks get theirs through check.New). A key the profile lists under not_promised skips the
// test with the profile's reason; an undeclared key or a wrong type fails it: a check never
// passes on a missing expectation.
func Want[T any](t testing.TB, m *Machine, key string) T {
	t.Helper()
	v, err := profile.Get[T](m.Profile(), key)
	var np *profile.NotPromisedError
	switch {
	case errors.As(err, &np):
		t.Skip(err.Error())
	case err != nil:
		t.Fatal(err.Error())
	}
	return v
}
