package packages

import (
	"fmt"
	"path"
	"strings"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
)

// dnf drives dnf 4 and rpm (Azure Linux 3.0 ships it beside tdnf; the stand-in runs Debian's).
// Every command sees only the run's repository (--disablerepo='*' --enablerepo=vmtest), whose
// file sets neither gpgcheck nor, unless asked, repo_gpgcheck: the image's own defaults decide
// what is refused. It does set skip_if_unavailable=0: a repository refused at refresh must fail
// the refresh, not be skipped with a warning. rpm keeps a locally edited %config(noreplace) file in place on upgrade and
// writes the package's as .rpmnew; on remove it saves the edited file as .rpmsave.
type dnf struct{}

const dnfRepo = "/etc/yum.repos.d/vmtest.repo"

func (dnf) Name() string      { return "dnf" }
func (dnf) Format() fx.Format { return fx.RPM }

func (dnf) cmd(args string) string {
	return "sudo dnf -y --disablerepo='*' --enablerepo=vmtest " + args + " 2>&1"
}

func (d dnf) UseRepo(url, keyPath string, repoGPGCheck bool) string {
	conf := fmt.Sprintf("[vmtest]\\nname=azl-vmtest package fixtures\\nbaseurl=%s\\ngpgkey=file://%s\\nmetadata_expire=0\\nskip_if_unavailable=0\\n", url, keyPath)
	if repoGPGCheck {
		conf += "repo_gpgcheck=1\\n"
	}
	return fmt.Sprintf("sudo mkdir -p %s && printf '%s' | sudo tee %s >/dev/null && %s", path.Dir(dnfRepo), conf, dnfRepo, d.cmd("-q clean all"))
}
func (d dnf) Refresh() string { return d.cmd("makecache") }
func (d dnf) Install(version string, pkgs ...string) string {
	return d.cmd("install " + strings.Join(versioned(version, "-", "", pkgs), " "))
}

// CheckUpdate: dnf check-update exits 100 when updates exist, 0 when none, 1 on an error.
func (d dnf) CheckUpdate() string { return d.cmd("check-update") }
func (dnf) UpdatesExit() int      { return 100 }
func (d dnf) Upgrade(pkgs ...string) string {
	return d.cmd("upgrade " + strings.Join(pkgs, " "))
}
func (d dnf) Downgrade(version string, pkgs ...string) string {
	return d.cmd("downgrade " + strings.Join(versioned(version, "-", "", pkgs), " "))
}
func (d dnf) HistoryUndo() string { return d.cmd("history undo last") }
func (d dnf) Remove(pkgs ...string) string {
	return d.cmd("remove " + strings.Join(pkgs, " "))
}

// Purge: rpm has no purge. It removes those of pkgs still installed (dnf refuses a remove that
// matches nothing); an edited configuration file stays behind as .rpmsave, as rpm's rules say.
func (d dnf) Purge(pkgs ...string) string {
	return fmt.Sprintf("p=''; for n in %s; do sudo rpm -q --quiet $n && p=\"$p $n\"; done; [ -z \"$p\" ] || %s",
		strings.Join(pkgs, " "), d.cmd("remove $p"))
}
func (dnf) NewConfig(path string) string     { return path + ".rpmnew" }
func (dnf) RemovedConfig(path string) string { return path + ".rpmsave" }
func (dnf) Installed(pkg string) string {
	return "sudo rpm -q --qf '%{VERSION}-%{RELEASE}\\n' " + pkg + " 2>/dev/null | grep -v ' '"
}
func (dnf) Verify(pkg string) string { return "sudo rpm -V " + pkg + " 2>&1" }

// Audit: rpm's database opens and verifies, and dnf check finds no broken dependency,
// duplicate or obsoleted package (it prints those on stdout and exits 1; its log messages, such
// as the stand-in's "Unable to detect release version", go to stderr, shown only on failure).
func (dnf) Audit() string {
	return "sudo rpmdb --verifydb 2>&1 && { sudo dnf -q check 2>/tmp/vmtest-dnf-check.err || { cat /tmp/vmtest-dnf-check.err; exit 1; }; }"
}

func (dnf) Refusals() []Refusal {
	return []Refusal{
		{Repo: "unsigned", Pattern: `is not signed`},
		{Repo: "untrusted", Pattern: `not correct for this package|Public key for \S+ is not installed`},
		{Repo: "altered", Pattern: `Problem opening package|[Dd]igests? (mismatch|BAD|NOT OK)`},
		{Repo: "untrusted", RepoGPGCheck: true, AtRefresh: true, Pattern: `repomd\.xml GPG signature verification error|[Bb]ad GPG signature`},
	}
}
