package packages

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

func TestUnitMainConfig(t *testing.T) {
	want := map[string]string{"best": "false", "gpgcheck": "true", "skip_if_unavailable": "true", "installonly_limit": "3"}
	// dnf 4's dump (Debian 12's dnf 4.14) and dnf5's --dump-main-config spell booleans 1/0;
	// tdnf.conf and dnf.conf as written may say True/False.
	require.NoError(t, MainConfig(want, "[main]\nbest = 0\ngpgcheck = 1\ninstallonly_limit = 3\nskip_if_unavailable = 1\n"))
	require.NoError(t, MainConfig(want, "[main]\ngpgcheck=True\ninstallonly_limit=3\nbest=False\nskip_if_unavailable=True\n"))
	assert.EqualError(t, MainConfig(want, "[main]\nbest = 0\ngpgcheck = 0\ninstallonly_limit = 3\nskip_if_unavailable = 1\n"),
		`package manager option gpgcheck: expected "true", got "false"`)
	assert.EqualError(t, MainConfig(map[string]string{"pkg_gpgcheck": "true"}, "[main]\ngpgcheck = 1\n"),
		`package manager option pkg_gpgcheck: expected "true", got "(not set)"`)
	assert.ErrorContains(t, MainConfig(want, "(no RPM package manager: no dnf5, dnf or tdnf)\n"),
		`package manager option best: expected "false", got "(no RPM package manager: no dnf5, dnf or tdnf)"`)
	// A commented-out line is not a setting.
	assert.ErrorContains(t, MainConfig(map[string]string{"gpgcheck": "true"}, "best = 0\n#gpgcheck=1\n"), `got "(not set)"`)
}
