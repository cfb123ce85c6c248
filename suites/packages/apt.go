package packages

import (
	"fmt"
	"strings"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
)

// apt drives apt-get and dpkg. Its sources are only the run's repository (SourceList set to
// one file, no SourceParts), so nothing reaches for the image's own mirrors; a changed
// configuration file is kept and the package's version written beside it (.dpkg-dist), as
// dpkg does when it may not ask. apt always checks the repository's signature (InRelease).
type apt struct{}

const aptList = "/etc/apt/sources.list.d/vmtest.list"

func (apt) Name() string      { return "apt" }
func (apt) Format() fx.Format { return fx.Deb }

func (apt) get(args string) string {
	return "sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dir::Etc::SourceList=" + aptList +
		" -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + args + " 2>&1"
}

func (apt) UseRepo(url, keyPath string, _ bool) string {
	return fmt.Sprintf("echo 'deb [signed-by=%s] %s ./' | sudo tee %s >/dev/null && sudo rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb", keyPath, url, aptList)
}
func (a apt) Refresh() string { return a.get("update") }
func (a apt) Install(version string, pkgs ...string) string {
	return a.get("install --allow-downgrades " + strings.Join(versioned(version, "=", "-1", pkgs), " "))
}
func (a apt) CheckUpdate() string {
	return "apt list --upgradable -o Dir::Etc::SourceList=" + aptList + " -o Dir::Etc::SourceParts=- 2>/dev/null"
}
func (apt) UpdatesExit() int { return 0 }
func (a apt) Upgrade(pkgs ...string) string {
	return a.get("install --only-upgrade " + strings.Join(pkgs, " "))
}
func (a apt) Downgrade(version string, pkgs ...string) string { return a.Install(version, pkgs...) }
func (apt) HistoryUndo() string                               { return "" }
func (a apt) Remove(pkgs ...string) string                    { return a.get("remove " + strings.Join(pkgs, " ")) }
func (a apt) Purge(pkgs ...string) string                     { return a.get("purge " + strings.Join(pkgs, " ")) }
func (apt) NewConfig(path string) string                      { return path + ".dpkg-dist" }

// RemovedConfig: dpkg keeps a conffile in place on remove; purge deletes it.
func (apt) RemovedConfig(path string) string { return path }
func (apt) Installed(pkg string) string {
	return "dpkg-query -W -f='${Status} ${Version}\\n' " + pkg + " 2>/dev/null | sed -n 's/^install ok installed //p'"
}
func (apt) Verify(pkg string) string { return "sudo dpkg --verify " + pkg + " 2>&1" }
func (apt) Audit() string            { return "sudo dpkg --audit 2>&1" }
func (apt) Refusals() []Refusal {
	return []Refusal{
		{Repo: "unsigned", AtRefresh: true, Pattern: `is not signed`},
		{Repo: "untrusted", AtRefresh: true, Pattern: `NO_PUBKEY|not signed`},
		{Repo: "altered", Pattern: `Hash Sum mismatch|File has unexpected size|hashes do not match`},
	}
}
