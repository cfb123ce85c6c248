package profile

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGetReadsTheValueByKey(t *testing.T) {
	p, err := Load("standin")
	require.NoError(t, err)

	zone, err := Get[string](p, "firewall.default_zone")
	require.NoError(t, err)
	assert.Equal(t, "public", zone)

	auditd, err := Get[bool](p, "logging.auditd") // *bool in the struct reads as bool
	require.NoError(t, err)
	assert.True(t, auditd)

	ports, err := Get[[]string](p, "firewall.ports") // declared empty: a promise of none
	require.NoError(t, err)
	assert.Empty(t, ports)

	_, err = Get[string](p, "boot.bls_entries")
	var np *NotPromisedError
	require.ErrorAs(t, err, &np)
	assert.Contains(t, err.Error(), "does not promise boot.bls_entries: Debian's GRUB")

	_, err = Get[int](p, "firewall.default_zone")
	assert.ErrorContains(t, err, "firewall.default_zone is a string, not a int")
	_, err = Get[string](p, "firewall.nonsense")
	assert.ErrorContains(t, err, `no key "firewall.nonsense"`)
	assert.False(t, errors.As(err, &np))

	// A profile built in code declares nothing: a check must not read a zero value as a promise.
	_, err = Get[bool](&Profile{Name: "bare"}, "logging.auditd")
	assert.ErrorContains(t, err, "profile bare declares nothing for logging.auditd")
}

func TestYesNoKeyWithoutValueRefused(t *testing.T) {
	full, err := builtin.ReadFile("profiles/standin.yaml")
	require.NoError(t, err)
	for _, v := range []string{"  auditd:\n", "  auditd: null\n"} {
		_, err = Parse([]byte(replaceOnce(t, string(full), "  auditd: true\n", v)), "test.yaml")
		assert.ErrorContains(t, err, "logging.auditd has no value", v)
	}
}
