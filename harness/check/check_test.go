package check

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEqualAndSetNameExpectedAndActual(t *testing.T) {
	require.NoError(t, Equal("x", "a", "a"))
	assert.EqualError(t, Equal("x", "a", "b"), `x: expected "a", got "b"`)
	require.NoError(t, Set("s", []string{"a", "b"}, "b a"))
	assert.EqualError(t, Set("s", []string{"a", "b"}, "a b c"), `s: expected "a b", got "a b c"`)
	assert.EqualError(t, Set("s", nil, "8080/tcp"), `s: expected "", got "8080/tcp"`)
	require.NoError(t, Set("s", nil, ""))
	assert.EqualError(t, IntAtLeast("i", 30, "0"), "i: expected at least 30, got 0")
	assert.EqualError(t, IntAtMost("i", 235, "600"), "i: expected at most 235, got 600")
	assert.EqualError(t, IntAtLeast("i", 30, ""), `i: expected at least 30, got "" (not an integer)`)
	require.NoError(t, IntAtMost("i", 235, "120\n"))
	assert.EqualError(t, Match("m", `^6\.`, "5.15"), "m: expected a match for `^6\\.`, got \"5.15\"")
	assert.Equal(t, "no", Field("  masquerade: no\n", "masquerade"))
	assert.Equal(t, "x", Field("A=\"x\"\n", "A"))
	assert.Nil(t, Errors(nil, nil))
}

func TestCloudInit(t *testing.T) {
	// cloud-init 22.4 (no errors line) and 24.x (errors: []) both pass.
	require.NoError(t, CloudInit("done", "status: done\nboot_status_code: enabled-by-generator\ndetail:\nDataSourceNoCloud [seed=/dev/vdb]\nexit=0\n"))
	require.NoError(t, CloudInit("done", "status: done\nextended_status: done\nerrors: []\nrecoverable_errors: {}\nexit=0\n"))

	// A multi-line list: every item is reported (a \s* regexp read only the first as inline).
	err := CloudInit("done", "status: error\nerrors:\n\t- (\"scripts_user\", RuntimeError('runparts: 1 failures'))\n\t- (\"cc_ssh\", KeyError('x'))\nexit=1\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cloud-init status: expected "done", got "error"`)
	assert.Contains(t, err.Error(), "scripts_user")
	assert.Contains(t, err.Error(), "cc_ssh", "the second error of the list is reported too")
	assert.Contains(t, err.Error(), `exit code: expected 0, got "1"`)

	err = CloudInit("done", "status: done\nerrors: ['x']\nexit=2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cloud-init errors: expected none, got ["['x']"]`)
	assert.Contains(t, err.Error(), `exit code: expected 0, got "2"`)
	assert.Len(t, cloudInitErrors("errors:\n- a\n- b\nexit=1\n"), 2)
}

func TestLastLines(t *testing.T) {
	assert.Equal(t, "b\nc", LastLines("a\nb\nc\n", 2))
	assert.Equal(t, "a\nb", LastLines("  a\nb \n", 5))
}
