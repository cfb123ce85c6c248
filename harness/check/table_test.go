package check

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

var (
	zoneProbe = Probe{Name: "default-zone", Cmd: "firewall-cmd --get-default-zone"}
	unitProbe = Probe{Name: "unit", Cmd: "systemctl show {agents.waagent_unit}"}
	zoneRow   = New("firewall.default_zone", zoneProbe, "the default zone", func(want, out string) error {
		return Equal("default zone", want, strings.TrimSpace(out))
	})
)

func standin(t *testing.T) *profile.Profile {
	p, err := profile.Load("standin")
	require.NoError(t, err)
	return p
}

func TestRowJudgesByKey(t *testing.T) {
	p := standin(t)
	require.NoError(t, zoneRow.Judge(p, "public\n"))
	assert.EqualError(t, zoneRow.Judge(p, "trusted\n"), `default zone: expected "public", got "trusted"`)

	bls := New("boot.bls_entries", Probe{Name: "bls", Cmd: "ls"}, "", func(want bool, out string) error { return nil })
	var np *profile.NotPromisedError
	assert.True(t, errors.As(bls.Judge(p, ""), &np))
	assert.Contains(t, bls.Skip(p), "does not promise boot.bls_entries")
	assert.Empty(t, zoneRow.Skip(p))
}

func TestProbeCommandFillsKeys(t *testing.T) {
	p := standin(t)
	cmd, err := unitProbe.Command(p)
	require.NoError(t, err)
	assert.Equal(t, "systemctl show walinuxagent.service", cmd)

	cmd, err = Probe{Name: "x", Cmd: "awk '{print $1}' {network.cloud_init_network_file}"}.Command(p)
	require.NoError(t, err)
	assert.Equal(t, "awk '{print $1}' /etc/systemd/network/10-cloud-init-*.network", cmd, "awk's braces are no placeholder")

	_, err = Probe{Name: "x", Cmd: "cat {storage.nvme_model}"}.Command(p) // has spaces
	assert.ErrorContains(t, err, "cannot stand in the command")
	row := New("logging.auditd", Probe{Name: "x", Cmd: "iptables -S {firewall.iptables_rules}"}, "", func(bool, string) error { return nil })
	assert.Contains(t, row.Skip(p), "does not promise firewall.iptables_rules")
}

func TestTableValidate(t *testing.T) {
	require.NoError(t, Table{zoneRow}.Validate())
	bad := Table{zoneRow, zoneRow,
		New("firewall.nonsense", Probe{Name: "default-zone", Cmd: "other"}, "", func(string, string) error { return nil }),
		New("logging.auditd", Probe{Name: "a b", Cmd: "echo {boot.nothing}"}, "", func(bool, string) error { return nil }),
	}
	err := bad.Validate()
	require.Error(t, err)
	for _, want := range []string{"key checked by two rows", "firewall.nonsense: no such profile key",
		"two commands under one name", `probe name "a b"`, "unknown key {boot.nothing}"} {
		assert.Contains(t, err.Error(), want)
	}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestAuditPassesAProvenTable(t *testing.T) {
	fsys := fstest.MapFS{
		"standin/default-zone/good.txt":                                   file("public\n"),
		"standin/default-zone/broken-firewall.default_zone-trusted.txt":   file("trusted\n"),
		"standin/default-zone/broken-boot.root_fs-another-suites-row.txt": file("public\n"),
	}
	assert.Empty(t, Audit(Table{zoneRow}, fsys))
}

func TestAuditFindsUnprovenRows(t *testing.T) {
	text := func(errs []error) string {
		var s []string
		for _, e := range errs {
			s = append(s, e.Error())
		}
		return strings.Join(s, "\n")
	}
	// No answers at all.
	got := text(Audit(Table{zoneRow}, fstest.MapFS{}))
	assert.Contains(t, got, "row firewall.default_zone: no recorded good answer")
	assert.Contains(t, got, "row firewall.default_zone: no recorded broken answer makes it fail")

	got = text(Audit(Table{zoneRow}, fstest.MapFS{
		"standin/default-zone/good.txt":                               file("trusted\n"),
		"standin/default-zone/broken-firewall.default_zone-same.txt":  file("public\n"),
		"standin/default-zone/output.txt":                             file("x"),
		"nosuch/default-zone/good.txt":                                file("public\n"),
		"standin/default-zone/broken-firewall.default_zonee-typo.txt": file("x"),
	}))
	for _, want := range []string{
		"fixtures/standin/default-zone/good.txt: a good answer, but row firewall.default_zone rejects it",
		"broken-firewall.default_zone-same.txt: a broken answer for firewall.default_zone, but the row accepts it",
		"output.txt: name it good*.txt or broken-<key>[-<what>].txt",
		`fixtures/nosuch/default-zone/good.txt: no profile "nosuch"`,
		`breaks "firewall.default_zonee", which is no profile key`,
	} {
		assert.Contains(t, got, want)
	}

	// A judge whose message does not say what it expected.
	vague := New("firewall.default_zone", zoneProbe, "", func(want, out string) error {
		if strings.TrimSpace(out) != want {
			return errors.New("wrong zone")
		}
		return nil
	})
	got = text(Audit(Table{vague}, fstest.MapFS{
		"standin/default-zone/good.txt":                           file("public\n"),
		"standin/default-zone/broken-firewall.default_zone-x.txt": file("trusted\n"),
	}))
	assert.Contains(t, got, "rejects it without saying what it expected")
}

func TestProbeCommandListsAndMaps(t *testing.T) {
	p := standin(t)
	cmd, err := Probe{Name: "x", Cmd: "sysctl {network.sysctls}"}.Command(p)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(cmd, "sysctl net.ipv4.conf.all.accept_redirects net.ipv4.conf.all.accept_source_route "), cmd)
	cmd, err = Probe{Name: "x", Cmd: "echo {firewall.services}"}.Command(p)
	require.NoError(t, err)
	assert.Equal(t, "echo dhcpv6-client ssh", cmd)
	_, err = Probe{Name: "x", Cmd: "echo {logging.auditd}"}.Command(p)
	assert.ErrorContains(t, err, "logging.auditd cannot stand in a command")
}
