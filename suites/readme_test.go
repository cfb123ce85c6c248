package suites_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
	"github.com/azl-vmtest/azl-vmtest/suites/agents"
	"github.com/azl-vmtest/azl-vmtest/suites/boot"
	"github.com/azl-vmtest/azl-vmtest/suites/fips"
	"github.com/azl-vmtest/azl-vmtest/suites/firewall"
	"github.com/azl-vmtest/azl-vmtest/suites/hardening"
	"github.com/azl-vmtest/azl-vmtest/suites/hyperv"
	"github.com/azl-vmtest/azl-vmtest/suites/logging"
	"github.com/azl-vmtest/azl-vmtest/suites/network"
	"github.com/azl-vmtest/azl-vmtest/suites/packages"
	"github.com/azl-vmtest/azl-vmtest/suites/selinux"
	"github.com/azl-vmtest/azl-vmtest/suites/storage"
	"github.com/azl-vmtest/azl-vmtest/suites/trustedlaunch"
)

// tables are every suite's read-only checks, in the README's order.
var tables = []struct {
	suite string
	table check.Table
}{
	{"boot", boot.Checks}, {"network", network.Checks}, {"firewall", firewall.Checks},
	{"storage", storage.Checks}, {"logging", logging.Checks}, {"agents", agents.Checks},
	{"hardening", hardening.Checks}, {"selinux", selinux.Checks}, {"fips", fips.Checks},
	{"hyperv", hyperv.Checks}, {"trustedlaunch", trustedlaunch.Checks},
	{"packages", packages.Checks},
}

const begin, end = "<!-- check tables: begin (generated: VMTEST_UPDATE_README=1 go test ./suites/ -run Readme) -->\n", "<!-- check tables: end -->\n"

// checkList is the README's list of table checks, made from the tables themselves.
func checkList() string {
	var b strings.Builder
	b.WriteString("| suite | profile key (`TestChecks/<key>`) | probe | what it checks |\n|---|---|---|---|\n")
	for _, s := range tables {
		for _, r := range s.table {
			fmt.Fprintf(&b, "| %s | `%s` | `%s` | %s |\n", s.suite, r.Key, r.Probe.Name, r.Doc)
		}
	}
	return b.String()
}

// TestUnitReadmeListsEveryCheck: the README's list of table checks is the tables', and every
// code test of a suite (traffic, hot-plug, reboot) is listed by name.
func TestUnitReadmeListsEveryCheck(t *testing.T) {
	// Every suite with a check table is in tables (a new suite's table must not go unlisted).
	withTable, err := filepath.Glob("*/checks.go")
	require.NoError(t, err)
	for _, f := range withTable {
		listed := false
		for _, s := range tables {
			listed = listed || s.suite == filepath.Dir(f)
		}
		assert.True(t, listed, "suites/%s has a check table (checks.go) that tables in readme_test.go does not list", filepath.Dir(f))
	}
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	text := string(readme)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	require.True(t, i >= 0 && j > i, "README.md: the check tables' markers are missing")
	want := text[:i+len(begin)] + checkList() + text[j:]
	if os.Getenv("VMTEST_UPDATE_README") == "1" {
		require.NoError(t, os.WriteFile("../README.md", []byte(want), 0o644))
		return
	}
	assert.Equal(t, want, text, "README.md's check list differs from the tables: run VMTEST_UPDATE_README=1 go test ./suites/ -run Readme")

	files, err := filepath.Glob("*/*_test.go")
	require.NoError(t, err)
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		require.NoError(t, err)
		for _, d := range af.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			name := fn.Name.Name
			if name == "TestMain" || name == "TestChecks" || strings.HasPrefix(name, "TestUnit") {
				continue
			}
			row := "| " + filepath.Dir(f) + " | `" + name + "` |"
			assert.True(t, strings.Contains(text, row), "README.md does not list %s's %s: expected a row starting %q in its table of code checks", filepath.Dir(f), name, row)
		}
	}
}
