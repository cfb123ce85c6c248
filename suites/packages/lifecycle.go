// Package packages verifies the package lifecycle against a local repository of test packages
// the harness builds per run (fixtures/packages) and serves from the host: install, check for
// updates, upgrade keeping a locally edited configuration file, downgrade, remove and purge, the
// package database consistent after all of it, and, with gpgcheck promised, an unsigned
// repository, one signed by a key the guest does not trust and a package altered after signing
// each refused with the manager's own error and nothing installed.
//
// The manager comes from the profile (packages.manager). Drivers: apt (the stand-in). The RPM
// managers (dnf5 on 4.0, tdnf on 3.0, dnf 4) are to come: the suite skips on them, saying so.
package packages

import (
	"fmt"
	"regexp"
	"strings"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Driver turns each lifecycle step into the manager's guest command. Every command prints the
// manager's own output; the judges below read it.
type Driver interface {
	// Format is the package format the manager installs.
	Format() fx.Format
	// UseRepo makes url (signed, if at all, by the key at keyPath in the guest) the only
	// repository the following commands see.
	UseRepo(url, keyPath string) string
	Refresh() string
	// Install installs the packages at a version ("" = the newest).
	Install(version string, pkgs ...string) string
	CheckUpdate() string
	Upgrade(pkgs ...string) string
	Downgrade(version string, pkgs ...string) string
	Remove(pkgs ...string) string
	Purge(pkgs ...string) string
	// Installed prints the package's installed version, or nothing.
	Installed(pkg string) string
	// Verify checks the installed files against the package database (exit 0 and no output:
	// clean).
	Verify(pkg string) string
	// Audit checks the package database for half-installed or broken packages.
	Audit() string
	// Errors are the manager's own messages for each refusal.
	Errors() Refusals
}

// Refusals are a manager's messages (regular expressions) for what it must refuse.
type Refusals struct{ Unsigned, Untrusted, Altered string }

// For returns the driver of a profile's packages.manager, or the reason there is none.
func For(manager string) (Driver, string) {
	switch manager {
	case "apt":
		return apt{}, ""
	case "dnf5", "tdnf", "dnf":
		return nil, fmt.Sprintf("needs the %s driver: the RPM drivers are not written yet (the stand-in runs apt)", manager)
	}
	return nil, fmt.Sprintf("no driver for packages.manager %q (apt, dnf, dnf5, tdnf)", manager)
}

// apt drives apt-get and dpkg. Its sources are only the run's repository (SourceList set to
// one file, no SourceParts), so nothing reaches for the image's own mirrors; a changed
// configuration file is kept and the package's version written beside it (.dpkg-dist), as
// dpkg does when it may not ask.
type apt struct{}

const aptList = "/etc/apt/sources.list.d/vmtest.list"

func (apt) Format() fx.Format { return fx.Deb }

func (apt) get(args string) string {
	return "sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dir::Etc::SourceList=" + aptList +
		" -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + args + " 2>&1"
}

func (apt) UseRepo(url, keyPath string) string {
	return fmt.Sprintf("echo 'deb [signed-by=%s] %s ./' | sudo tee %s >/dev/null && sudo rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb", keyPath, url, aptList)
}
func (a apt) Refresh() string { return a.get("update") }
func (a apt) Install(version string, pkgs ...string) string {
	return a.get("install --allow-downgrades " + strings.Join(versioned(version, "-1", pkgs), " "))
}
func (a apt) CheckUpdate() string {
	return "apt list --upgradable -o Dir::Etc::SourceList=" + aptList + " -o Dir::Etc::SourceParts=- 2>/dev/null"
}
func (a apt) Upgrade(pkgs ...string) string {
	return a.get("install --only-upgrade " + strings.Join(pkgs, " "))
}
func (a apt) Downgrade(version string, pkgs ...string) string { return a.Install(version, pkgs...) }
func (a apt) Remove(pkgs ...string) string                    { return a.get("remove " + strings.Join(pkgs, " ")) }
func (a apt) Purge(pkgs ...string) string                     { return a.get("purge " + strings.Join(pkgs, " ")) }
func (apt) Installed(pkg string) string {
	return "dpkg-query -W -f='${Status} ${Version}\\n' " + pkg + " 2>/dev/null | sed -n 's/^install ok installed //p'"
}
func (apt) Verify(pkg string) string { return "sudo dpkg --verify " + pkg + " 2>&1" }
func (apt) Audit() string            { return "sudo dpkg --audit 2>&1" }
func (apt) Errors() Refusals {
	return Refusals{
		Unsigned:  `is not signed`,
		Untrusted: `NO_PUBKEY|not signed`,
		Altered:   `Hash Sum mismatch|File has unexpected size|hashes do not match`,
	}
}

func versioned(version, release string, pkgs []string) []string {
	if version == "" {
		return pkgs
	}
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p + "=" + version + release
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
func Upgradable(pkg, version, out string) error {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pkg) + `[/ .]\S*\s+` + regexp.QuoteMeta(version))
	if !re.MatchString(out) {
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
