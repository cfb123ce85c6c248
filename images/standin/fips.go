package standin

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// fipsBuildTools are the host tools the FIPS layer needs besides the image's: apt-get to fetch
// Debian's openssl source, dpkg-source to unpack it with Debian's patches, and a C toolchain
// with perl for OpenSSL's Configure (scripts/host-setup.sh installs them).
var fipsBuildTools = []string{"apt-get", "dpkg-source", "perl", "gcc", "make"}

// layerHooks returns the mmdebstrap arguments of the flavour's layer, run after the recipe's
// customize hook.
func (b *builder) layerHooks(ctx context.Context, work string) ([]string, error) {
	if b.opts.Flavour != FIPS {
		return nil, nil
	}
	provider, err := b.fipsProvider(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "fips")
	if err := writeFS(fipsFS, "fips", dir); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf(`--customize-hook=sh %q "$1" %q`, filepath.Join(dir, "customize.sh"), provider)}, nil
}

// writeFS copies the embedded folder root of fsys to dst.
func writeFS(fsys fs.FS, root, dst string) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(p, root))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// aptFailures is what apt-get said it failed to fetch ("E: Failed to fetch URL  404  Not
// Found ..."), one clause each, or the error's first line.
func aptFailures(err error) string {
	if err == nil {
		return "no .dsc"
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if rest, ok := strings.CutPrefix(l, "E: Failed to fetch "); ok && strings.Contains(rest, "://") {
			out = append(out, rest)
		}
	}
	if len(out) == 0 {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return first
	}
	return strings.Join(out, "; ")
}

var origTarball = regexp.MustCompile(`^openssl_([0-9][0-9a-z.]*)\.orig\.tar\.gz$`)

// fipsProvider returns OpenSSL's FIPS provider (fips.so) for the guest, built on the host from
// Debian's own openssl source package: Debian 12 does not ship the provider. The source comes
// through the host's apt sources as deb-src entries, with a private apt configuration (the
// host's apt state is never touched); apt checks it against the signed Sources index. Built
// providers are cached by upstream version under <cache>/fips/: a 3.0.x provider loads into
// any later 3.0.x libcrypto, and the image's fipsinstall self-test proves it does.
func (b *builder) fipsProvider(ctx context.Context) (string, error) {
	a := b.opts.Arch
	dir := filepath.Join(b.opts.CacheDir, "fips")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(ctx, filepath.Join(dir, "build.lock"), b.opts.Log)
	if err != nil {
		return "", err
	}
	defer unlock()
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	sources, err := hostSources(a)
	if err != nil {
		return "", err
	}
	var src strings.Builder
	for _, l := range strings.Split(sources, "\n") {
		if strings.HasPrefix(l, "deb ") || strings.HasPrefix(l, "deb\t") {
			src.WriteString("deb-src" + l[3:] + "\n")
		}
	}
	apt, err := privateApt(work, src.String(), a.Debian)
	if err != nil {
		return "", err
	}
	dl := filepath.Join(work, "dl")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	b.stage("FIPS provider: fetching Debian's openssl source (deb-src of the host's apt sources)")
	if err := b.cmdAt(ctx, "", nil, "apt-get", append(apt, "update")...); err != nil {
		return "", err
	}
	// Where a suite's packaging answers 404 (it happens on the security archive) apt-get fails
	// after fetching the upstream tarball: build that, without Debian's patches, and say so.
	srcErr := b.cmdAt(ctx, dl, nil, "apt-get", append(apt, "source", "--download-only", "openssl")...)
	ents, _ := os.ReadDir(dl)
	var orig, dsc, version string
	for _, e := range ents {
		if m := origTarball.FindStringSubmatch(e.Name()); m != nil {
			orig, version = filepath.Join(dl, e.Name()), m[1]
		}
		if strings.HasSuffix(e.Name(), ".dsc") {
			dsc = filepath.Join(dl, e.Name())
		}
	}
	if orig == "" {
		return "", fmt.Errorf("no openssl source from the host's apt sources as deb-src (%v): the FIPS stand-in builds OpenSSL's FIPS provider from it; point VMTEST_APT_SOURCES at a Debian %s mirror that serves sources", srcErr, Suite)
	}
	out := filepath.Join(dir, fmt.Sprintf("fips-openssl-%s-%s.so", version, a.Name))
	if _, err := os.Stat(out); err == nil {
		b.stage("FIPS provider: OpenSSL %s cached: %s", version, out)
		return out, nil
	}
	tree := filepath.Join(work, "src")
	if dsc != "" && srcErr == nil {
		b.stage("FIPS provider: unpacking %s with Debian's patches", filepath.Base(dsc))
		// apt already checked the .dsc against the signed Sources index.
		if err := b.cmdAt(ctx, dl, nil, "dpkg-source", "--no-check", "-x", dsc, tree); err != nil {
			return "", err
		}
	} else {
		b.stage("FIPS provider: Debian's packaging of openssl %s did not download (%s); building the upstream tarball it ships, without Debian's patches", version, aptFailures(srcErr))
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return "", err
		}
		if err := b.cmdAt(ctx, "", nil, "tar", "-xzf", orig, "-C", tree, "--strip-components=1"); err != nil {
			return "", err
		}
	}
	jobs := fmt.Sprintf("-j%d", runtime.NumCPU())
	b.stage("FIPS provider: building OpenSSL %s's providers/fips.so (./Configure enable-fips)", version)
	for _, c := range [][]string{
		{"perl", "./Configure", "enable-fips"},
		{"make", jobs, "build_generated"},
		{"make", jobs, "providers/fips.so"},
	} {
		if err := b.cmdAt(ctx, tree, nil, c[0], c[1:]...); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(filepath.Join(tree, "providers", "fips.so"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(out+".tmp", data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", err
	}
	b.stage("FIPS provider: built %s", out)
	return out, nil
}
