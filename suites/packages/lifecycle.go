// Package packages verifies the package lifecycle against a local repository of test packages
// the harness builds per run (fixtures/packages) and serves from the host: install, check for
// updates, upgrade keeping a locally edited configuration file, downgrade, remove and purge, the
// package database consistent after all of it, and, with gpgcheck promised, an unsigned
// repository, one signed by a key the guest does not trust and a package altered after signing
// each refused with the manager's own error and nothing installed.
//
// The managers come from the profile (packages.managers): each test runs once per manager the
// image ships. Drivers: apt and dnf (4), both run for real on the stand-in (Debian's dnf and rpm
// exercise the RPM path: repodata, gpgcheck, repo_gpgcheck, the rpm database, scriptlets,
// rpm -V); dnf5 (4.0) and tdnf (3.0), whose commands, exit codes and messages come from their
// sources and are unit-tested on output composed from them (no image here runs them).
package packages

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Driver turns each lifecycle step into the manager's guest command. Every command prints the
// manager's own output; the judges below read it.
type Driver interface {
	// Name is the manager's name in profiles (packages.managers).
	Name() string
	// Format is the package format the manager installs.
	Format() fx.Format
	// UseRepo makes url (signed, if at all, by the key at keyPath in the guest) the only
	// repository the following commands see. repoGPGCheck asks the RPM managers to verify the
	// repository's metadata signature too (apt always does).
	UseRepo(url, keyPath string, repoGPGCheck bool) string
	Refresh() string
	// Install installs the packages at a version ("" = the newest).
	Install(version string, pkgs ...string) string
	// CheckUpdate lists the updates; it exits UpdatesExit when there are some.
	CheckUpdate() string
	UpdatesExit() int
	Upgrade(pkgs ...string) string
	Downgrade(version string, pkgs ...string) string
	// HistoryUndo undoes the last transaction ("": the manager keeps no history to undo).
	HistoryUndo() string
	Remove(pkgs ...string) string
	// Purge removes the packages and their configuration (as far as the manager's rules go).
	Purge(pkgs ...string) string
	// NewConfig is where an upgrade writes the package's configuration file when the installed
	// one was edited locally (the edited one stays in place).
	NewConfig(path string) string
	// RemovedConfig is where a locally edited configuration file is after a remove.
	RemovedConfig(path string) string
	// Installed prints the package's installed version, or nothing.
	Installed(pkg string) string
	// Verify checks the installed files against the package database (exit 0 and no output:
	// clean).
	Verify(pkg string) string
	// Audit checks the package database for half-installed or broken packages.
	Audit() string
	// Refusals are what the manager must refuse, each with its own message.
	Refusals() []Refusal
}

// Refusal is one thing a manager must refuse: installing from Repo (one of the run's
// repositories: unsigned, untrusted, altered) is refused at the refresh or at the install,
// with the manager's message Pattern (a regular expression).
type Refusal struct {
	Repo string
	// RepoGPGCheck: the case asks for the repository's metadata signature to be checked
	// (refused whatever gpgcheck says: the repository's configuration demands it).
	RepoGPGCheck bool
	AtRefresh    bool
	Pattern      string
}

// Name is the refusal's subtest name.
func (r Refusal) Name() string {
	if r.RepoGPGCheck {
		return r.Repo + "-metadata"
	}
	return r.Repo
}

// For returns the driver of a manager named in packages.managers, or the reason there is none.
func For(manager string) (Driver, string) {
	switch manager {
	case "apt":
		return apt{}, ""
	case "dnf":
		return dnf4, ""
	case "dnf5":
		return dnf5, ""
	case "tdnf":
		return tdnf, ""
	}
	return nil, fmt.Sprintf("no driver for package manager %q (apt, dnf, dnf5, tdnf)", manager)
}

// versioned names each package at version-release with the manager's separator (apt "=",
// dnf "-"); version "" leaves the names bare (the newest).
func versioned(version, sep, release string, pkgs []string) []string {
	if version == "" {
		return pkgs
	}
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p + sep + version + release
	}
	return out
}

// InstalledVersion judges the driver's Installed output: want "" means not installed.
func InstalledVersion(pkg, want, out string) error {
	got := strings.TrimSpace(out)
	switch {
	case want == "" && got != "":
		return fmt.Errorf("%s: expected not installed, got version %s installed", pkg, got)
	case want != "" && got == "":
		return fmt.Errorf("%s: expected version %s installed, got none", pkg, want)
	case want != "" && !strings.HasPrefix(got, want):
		return fmt.Errorf("%s: expected version %s installed, got %s", pkg, want, got)
	}
	return nil
}

// Upgradable judges CheckUpdate's output: pkg is offered at version.
// A listing is lines of "name[/.]arch version ..." (apt, dnf, dnf5) or tdnf's JSON array of
// {"Name", "Arch", "Evr", "Repo"} objects.
func Upgradable(pkg, version, out string) error {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pkg) + `[/ .]\S*\s+` + regexp.QuoteMeta(version))
	offered := re.MatchString(out)
	if i := strings.Index(out, "["); !offered && i >= 0 {
		var list []struct{ Name, Evr string }
		if json.Unmarshal([]byte(strings.TrimSpace(out[i:])), &list) == nil {
			for _, p := range list {
				offered = offered || (p.Name == pkg && strings.HasPrefix(p.Evr, version))
			}
		}
	}
	if !offered {
		return fmt.Errorf("updates: expected %s %s offered, got %q", pkg, version, strings.TrimSpace(out))
	}
	return nil
}

// Clean judges Verify and Audit: exit 0 and nothing reported.
func Clean(what string, code int, out string) error {
	if code != 0 || strings.TrimSpace(out) != "" {
		return fmt.Errorf("%s: expected clean (exit 0, no output), got exit %d: %q", what, code, strings.TrimSpace(out))
	}
	return nil
}

// Refused judges a step that must be refused (want) or accepted: refused means a non-zero exit
// with the manager's own message (pattern); accepted means exit 0.
func Refused(what string, want bool, pattern string, code int, out string) error {
	matched := regexp.MustCompile(pattern).MatchString(out)
	switch {
	case want && (code == 0 || !matched):
		return fmt.Errorf("%s: expected refused (non-zero exit and /%s/), got exit %d: %q", what, pattern, code, check.LastLines(out, 6))
	case !want && code != 0:
		return fmt.Errorf("%s: expected accepted (gpgcheck off), got exit %d: %q", what, code, check.LastLines(out, 6))
	}
	return nil
}

// InstallOnlyLimit reads installonly_limit from the RPM manager's effective configuration (the
// dnf-config probe's output).
func InstallOnlyLimit(out string) (int, error) {
	if v, ok := configDump(out)["installonly_limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("installonly_limit: %q is not a count", v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("installonly_limit: not in the manager's configuration dump %q", check.LastLines(out, 4))
}

// InstallOnlyKept judges the versions of install-only pkg left after installing each of
// versions in turn (oldest first), one version(-release) per line in out (the driver's
// Installed): the newest limit of them (all of them with limit 0, which means no limit), the
// older ones removed.
func InstallOnlyKept(pkg string, versions []string, limit int, out string) error {
	want := versions
	if limit > 0 && limit < len(versions) {
		want = versions[len(versions)-limit:]
	}
	var got []string
	for _, f := range strings.Fields(out) {
		v, _, _ := strings.Cut(f, "-")
		got = append(got, v)
	}
	sort.Strings(got)
	return check.Equal(fmt.Sprintf("%s versions installed after installing %s (installonly_limit %d)", pkg, strings.Join(versions, ", "), limit),
		strings.Join(want, " "), strings.Join(got, " "))
}
