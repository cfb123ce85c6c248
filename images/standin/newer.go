package standin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NewerSuite is the Debian release the recipe's newer.txt packages come from.
const NewerSuite = "trixie"

// newerPackage is a line of recipe/newer.txt: a package taken from NewerSuite, and the
// package names to drop from its Conflicts.
type newerPackage struct {
	Name          string
	DropConflicts []string
}

// newerPackages parses recipe/newer.txt.
func newerPackages() ([]newerPackage, error) {
	b, err := recipeFS.ReadFile("recipe/newer.txt")
	if err != nil {
		return nil, err
	}
	return parseNewer(string(b))
}

func parseNewer(text string) ([]newerPackage, error) {
	var out []newerPackage
	for i, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		p := newerPackage{Name: f[0]}
		for _, opt := range f[1:] {
			k, v, _ := strings.Cut(opt, "=")
			if k != "drop-conflicts" || v == "" {
				return nil, fmt.Errorf("recipe/newer.txt line %d: unknown change %q (known: drop-conflicts=<package>[,<package>])", i+1, opt)
			}
			p.DropConflicts = append(p.DropConflicts, strings.Split(v, ",")...)
		}
		out = append(out, p)
	}
	return out, nil
}

// newerSources turns the stand-in's one-line sources into NewerSuite's: the main suite's
// entries, same mirror, same keyring (Debian 12's archive keyring carries Debian 13's keys).
func newerSources(sources string) string {
	var sb strings.Builder
	for _, e := range parseOneLine(sources) {
		if e.Suite == Suite {
			e.Suite = NewerSuite
			sb.WriteString(e.line())
		}
	}
	return sb.String()
}

// newerDebs downloads recipe/newer.txt's packages for the image's architecture through the
// host's mirror and applies the recipe's changes, into a new folder under /tmp (mmdebstrap
// installs a local .deb from the same path inside the root filesystem, so it must be one
// that path can take). It returns the folder (to remove after the build) and the .deb paths.
func (b *builder) newerDebs(ctx context.Context, work, sources string) (string, []string, error) {
	pkgs, err := newerPackages()
	if err != nil || len(pkgs) == 0 {
		return "", nil, err
	}
	src := newerSources(sources)
	if src == "" {
		return "", nil, fmt.Errorf("no %s entry in the apt sources to derive %s's from (recipe/newer.txt takes packages from %s): "+
			"write one-line apt sources for a Debian mirror that serves both (\"deb <mirror> %s main\") to a file and set VMTEST_APT_SOURCES=<file>", Suite, NewerSuite, NewerSuite, Suite)
	}
	apt, err := privateApt(filepath.Join(work, "newer-apt"), src, b.opts.Arch.Debian)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "standin-newer-debs-")
	if err != nil {
		return "", nil, err
	}
	fail := func(err error) (string, []string, error) {
		os.RemoveAll(dir)
		return "", nil, err
	}
	names := make([]string, len(pkgs))
	for i, p := range pkgs {
		names[i] = p.Name
	}
	b.stage("newer packages: %s from Debian %s (the host's mirror)", strings.Join(names, ", "), NewerSuite)
	if err := b.cmdAt(ctx, "", nil, "apt-get", append(apt, "update")...); err != nil {
		return fail(fmt.Errorf("reading Debian %s's index (%s): %w; a mirror without %s: set VMTEST_APT_SOURCES to one that has it", NewerSuite, strings.TrimSpace(src), err, NewerSuite))
	}
	if err := b.cmdAt(ctx, dir, nil, "apt-get", append(apt, append([]string{"download"}, names...)...)...); err != nil {
		return fail(err)
	}
	var debs []string
	for _, p := range pkgs {
		m, _ := filepath.Glob(filepath.Join(dir, p.Name+"_*.deb"))
		if len(m) != 1 {
			return fail(fmt.Errorf("apt-get download %s left %d files in %s, want 1", p.Name, len(m), dir))
		}
		deb := m[0]
		if len(p.DropConflicts) > 0 {
			if deb, err = b.dropConflicts(ctx, deb, p.DropConflicts); err != nil {
				return fail(err)
			}
		}
		debs = append(debs, deb)
	}
	return dir, debs, nil
}

// dropConflicts rebuilds deb without the named packages in its Conflicts, its version marked
// "+standin" so that `dpkg -l` in the guest says it is not Debian's own.
func (b *builder) dropConflicts(ctx context.Context, deb string, drop []string) (string, error) {
	tree := strings.TrimSuffix(deb, ".deb") + ".tree"
	if err := b.cmd(ctx, "dpkg-deb", "-R", deb, tree); err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	ctl := filepath.Join(tree, "DEBIAN", "control")
	text, err := os.ReadFile(ctl)
	if err != nil {
		return "", err
	}
	out, dropped, err := editControl(string(text), drop)
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(deb), err)
	}
	b.stage("newer packages: %s: dropped Conflicts on %s", filepath.Base(deb), strings.Join(dropped, ", "))
	if err := os.WriteFile(ctl, []byte(out), 0o644); err != nil {
		return "", err
	}
	if err := os.Remove(deb); err != nil {
		return "", err
	}
	rebuilt := strings.TrimSuffix(deb, ".deb") + "+standin.deb"
	if err := b.cmd(ctx, "dpkg-deb", "--root-owner-group", "-b", tree, rebuilt); err != nil {
		return "", err
	}
	return rebuilt, nil
}

// editControl removes drop from a control file's Conflicts and appends "+standin" to its
// Version; it returns what it dropped, and an error when none of drop was there (the recipe's
// rule is then out of date).
func editControl(text string, drop []string) (string, []string, error) {
	var lines, dropped []string
	version := false
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "Version: "):
			l += "+standin"
			version = true
		case strings.HasPrefix(l, "Conflicts: "):
			var keep []string
			for _, c := range strings.Split(strings.TrimPrefix(l, "Conflicts: "), ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(c), " ")
				if contains(drop, name) {
					dropped = append(dropped, strings.TrimSpace(c))
				} else {
					keep = append(keep, strings.TrimSpace(c))
				}
			}
			if len(keep) == 0 {
				continue
			}
			l = "Conflicts: " + strings.Join(keep, ", ")
		}
		lines = append(lines, l)
	}
	if !version {
		return "", nil, fmt.Errorf("control file has no Version field")
	}
	if len(dropped) == 0 {
		return "", nil, fmt.Errorf("no Conflicts on %s to drop: remove that change from recipe/newer.txt", strings.Join(drop, ", "))
	}
	return strings.Join(lines, "\n") + "\n", dropped, nil
}
