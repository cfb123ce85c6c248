package packages

import (
	"fmt"
	"path"
	"strings"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
)

// rpmDriver drives an RPM package manager with rpm underneath: dnf 4 (Azure Linux 3.0 ships it
// beside tdnf; the stand-in runs Debian's), dnf5 (Azure Linux 4.0; /usr/bin/tdnf is a link to it)
// and tdnf (3.0). They share the repository file, rpm's database, rpm -V and rpm's rules for
// configuration files: a locally edited %config(noreplace) file stays in place on upgrade and the
// package's is written as .rpmnew; on remove the edited file is saved as .rpmsave. What differs is
// the command line, how updates are listed, the history, the database check and the messages of
// a refusal, each taken from the manager's source (cited below) and, for dnf 4, recorded on the
// stand-in.
//
// Every command sees only the run's repository, whose file sets neither gpgcheck nor, unless
// asked, repo_gpgcheck: the image's own defaults decide what is refused. It does set
// skip_if_unavailable=0: a repository refused at refresh must fail the refresh, not be skipped
// with a warning.
type rpmDriver struct {
	name string
	// cli runs the manager on the run's repository only.
	cli string
	// checkUpdate lists the updates; updatesExit is its exit status when there are some.
	checkUpdate string
	updatesExit int
	// historyUndo undoes the last transaction.
	historyUndo string
	// check checks the package database beyond rpm's own (broken dependencies, duplicates),
	// printing only problems.
	check    string
	refusals []Refusal
	// cache is the manager's cache folder as root runs it (its compiled-in default; an image
	// whose configuration moves it would need it here): UseRepo empties it, as `clean all`
	// would, without starting the manager (a dnf start is 2.4 s of Python under TCG).
	cache string
}

// dnf4: dnf 4 (Debian 12's 4.14 on the stand-in; every message below was recorded there).
var dnf4 = rpmDriver{
	name:        "dnf",
	cli:         "sudo dnf -y --disablerepo='*' --enablerepo=vmtest",
	checkUpdate: "check-update", updatesExit: 100, // 0 when none, 1 on an error
	historyUndo: "history undo last",
	cache:       "/var/cache/dnf", // dnf/const.py.in SYSTEM_CACHEDIR
	// dnf check prints problems on stdout and exits 1; its log messages (the stand-in's "Unable
	// to detect release version") go to stderr, shown only on failure.
	check: "sudo dnf -q check 2>/tmp/vmtest-dnf-check.err || { cat /tmp/vmtest-dnf-check.err; exit 1; }",
	refusals: []Refusal{
		{Repo: "unsigned", Pattern: `is not signed`},
		{Repo: "untrusted", Pattern: `not correct for this package|Public key for \S+ is not installed`},
		// With gpgcheck dnf's own check fails to open it; without, rpm's transaction test finds
		// "does not verify: Payload SHA256 digest: BAD" (both recorded on the stand-in).
		{Repo: "altered", Pattern: `Problem opening package|does not verify: \S+ \S+ digest: BAD|[Dd]igests? (mismatch|BAD|NOT OK)`},
		{Repo: "untrusted", RepoGPGCheck: true, AtRefresh: true, Pattern: `repomd\.xml GPG signature verification error|[Bb]ad GPG signature`},
	},
}

// dnf5 (rpm-software-management/dnf5 5.4.4.0): --repo enables that repository only;
// check-upgrade exits 100 with updates (dnf5/commands/check-upgrade/check-upgrade.cpp);
// history undo takes "last" (dnf5/commands/history/transaction_id.cpp). A package's signature
// problem is "OpenPGP check for package "N" (PATH) from repo "R" has failed: " followed by the
// result (libdnf5/base/transaction.cpp, libdnf5/rpm/rpm_signature.cpp); a repository's metadata
// signature is checked by librepo, as with dnf 4.
var dnf5 = rpmDriver{
	name:        "dnf5",
	cli:         "sudo dnf5 -y --repo=vmtest",
	checkUpdate: "check-upgrade", updatesExit: 100,
	historyUndo: "history undo last",
	cache:       "/var/cache/libdnf5", // libdnf5's system_cachedir
	check:       "sudo dnf5 -q check 2>/tmp/vmtest-dnf-check.err || { cat /tmp/vmtest-dnf-check.err; exit 1; }",
	refusals: []Refusal{
		{Repo: "unsigned", Pattern: `has failed: The package is not signed`},
		{Repo: "untrusted", Pattern: `has failed: (Import of the key didn't help, wrong key\?|Public key is not installed|No corresponding key was found|The signature is valid, but the key is not trusted)`},
		{Repo: "altered", Pattern: `Problem occurred when opening the package|does not verify: \S+ \S+ digest: BAD|[Dd]igests? (mismatch|BAD|NOT OK)`},
		{Repo: "untrusted", RepoGPGCheck: true, AtRefresh: true, Pattern: `repomd\.xml GPG signature verification error|[Bb]ad GPG signature|[Ss]igning key not found`},
	},
}

// tdnf (vmware/tdnf 3.x): --repo enables that repository only. check-update exits 0 whether or
// not there are updates unless dnf_check_update_compat=1 (tools/cli/lib/api.c), and its plain
// listing drops the version, so the JSON listing (-j: Name, Arch, Evr, Repo) is what is judged.
// history undo takes a transaction ID (--from), the last one of `tdnf history list` ("init"
// first: a system installed without tdnf's history has none). Errors print as
// "Error(CODE) : MESSAGE" with the messages of client/defines.h; repo_gpgcheck needs the
// repogpgcheck plugin, whose failure reads "repo md signature check: ..." (plugins/repogpgcheck).
var tdnf = rpmDriver{
	name:        "tdnf",
	cli:         "sudo tdnf -y --repo=vmtest",
	checkUpdate: "-j check-update", updatesExit: 0,
	cache:       "/var/cache/tdnf", // tdnf.conf's cachedir
	historyUndo: `history undo --from "$(sudo tdnf history init >/dev/null 2>&1; sudo tdnf history list | awk '$1 ~ /^[0-9]+$/ {id=$1} END {print id}')"`,
	// tdnf check says "Check completed without issues" when there are none.
	check: "out=$(sudo tdnf check 2>&1) || { echo \"$out\"; exit 1; }; echo \"$out\" | grep -v -e '^Check completed without issues$' -e '^Loaded plugin' || true",
	refusals: []Refusal{
		{Repo: "unsigned", Pattern: `RPM not signed`},
		{Repo: "untrusted", Pattern: `RPM is signed but failed to match with known keys|public key is unavailable|key is not trusted`},
		{Repo: "altered", Pattern: `possible corrupt rpm file|rpm generic failure|File checksum does not match|does not verify: \S+ \S+ digest: BAD|[Dd]igests? (mismatch|BAD|NOT OK)`},
		{Repo: "untrusted", RepoGPGCheck: true, AtRefresh: true, Pattern: `repo md signature check|failed to verify signature`},
	},
}

const dnfRepo = "/etc/yum.repos.d/vmtest.repo"

func (d rpmDriver) Name() string    { return d.name }
func (rpmDriver) Format() fx.Format { return fx.RPM }

func (d rpmDriver) cmd(args string) string { return d.cli + " " + args + " 2>&1" }

func (d rpmDriver) UseRepo(url, keyPath string, repoGPGCheck bool) string {
	conf := fmt.Sprintf("[vmtest]\\nname=azl-vmtest package fixtures\\nbaseurl=%s\\ngpgkey=file://%s\\nmetadata_expire=0\\nskip_if_unavailable=0\\n", url, keyPath)
	if repoGPGCheck {
		conf += "repo_gpgcheck=1\\n"
	}
	return fmt.Sprintf("sudo mkdir -p %s && printf '%s' | sudo tee %s >/dev/null && sudo rm -rf %s/*", path.Dir(dnfRepo), conf, dnfRepo, d.cache)
}
func (d rpmDriver) Refresh() string { return d.cmd("makecache") }
func (d rpmDriver) Install(version string, pkgs ...string) string {
	return d.cmd("install " + strings.Join(versioned(version, "-", "", pkgs), " "))
}
func (d rpmDriver) CheckUpdate() string { return d.cmd(d.checkUpdate) }
func (d rpmDriver) UpdatesExit() int    { return d.updatesExit }
func (d rpmDriver) Upgrade(pkgs ...string) string {
	return d.cmd("upgrade " + strings.Join(pkgs, " "))
}
func (d rpmDriver) Downgrade(version string, pkgs ...string) string {
	return d.cmd("downgrade " + strings.Join(versioned(version, "-", "", pkgs), " "))
}
func (d rpmDriver) HistoryUndo() string { return d.cmd(d.historyUndo) }
func (d rpmDriver) Remove(pkgs ...string) string {
	return d.cmd("remove " + strings.Join(pkgs, " "))
}

// Purge: rpm has no purge. It removes those of pkgs still installed (the managers refuse a
// remove that matches nothing); an edited configuration file stays behind as .rpmsave, as rpm's
// rules say.
func (d rpmDriver) Purge(pkgs ...string) string {
	return fmt.Sprintf("p=''; for n in %s; do sudo rpm -q --quiet $n && p=\"$p $n\"; done; [ -z \"$p\" ] || %s",
		strings.Join(pkgs, " "), d.cmd("remove $p"))
}
func (rpmDriver) NewConfig(path string) string     { return path + ".rpmnew" }
func (rpmDriver) RemovedConfig(path string) string { return path + ".rpmsave" }
func (rpmDriver) Installed(pkg string) string {
	return "sudo rpm -q --qf '%{VERSION}-%{RELEASE}\\n' " + pkg + " 2>/dev/null | grep -v ' '"
}
func (rpmDriver) Verify(pkg string) string { return "sudo rpm -V " + pkg + " 2>&1" }

// Audit: rpm's database opens and verifies, and the manager's own check finds no broken
// dependency, duplicate or obsoleted package.
func (d rpmDriver) Audit() string { return "sudo rpmdb --verifydb 2>&1 && { " + d.check + "; }" }

func (d rpmDriver) Refusals() []Refusal { return d.refusals }
