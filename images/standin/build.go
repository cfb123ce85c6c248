// Package standin builds the stand-in guest image: a Debian 12 disk configured like Azure Linux
// 4.0 wherever Debian allows, for the architectures in harness/arch. The recipe (package list,
// files, customize hook) is data under recipe/; the finished qcow2 is cached outside the checkout,
// keyed by a hash of the recipe, this builder's source and the architecture.
package standin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// Suite is the Debian release the stand-in is built from.
const Suite = "bookworm"

// The cache key covers everything that decides the image's content: the recipe data, the
// root filesystem and disk steps (rootfs.go, disk.go) and the apt source selection; a
// flavour's key adds its layer (the FIPS layer: fips.go and fips/). The caching, locking and
// logging in this file do not change the image and are not hashed.
//
//go:embed recipe rootfs.go disk.go sources.go newer.go
var recipeFS embed.FS

//go:embed fips fips.go
var fipsFS embed.FS

// Flavour is a variant of the stand-in: the standard image, or one with a layer on top.
type Flavour string

const (
	// Standard is the stand-in configured like Azure Linux 4.0's default image.
	Standard Flavour = ""
	// FIPS adds the FIPS layer: fips=1, OpenSSL's FIPS provider (built from Debian's openssl
	// source on the host, so only for the host's architecture) activated with the base
	// provider and fips=yes, and ssh/sshd limited to FIPS-approved algorithms.
	FIPS Flavour = "fips"
)

// Flavours are every stand-in flavour.
func Flavours() []Flavour { return []Flavour{Standard, FIPS} }

// ParseFlavour reads a flavour's name ("standard" or "" is the standard image).
func ParseFlavour(s string) (Flavour, error) {
	switch s {
	case "", "standard":
		return Standard, nil
	case "fips":
		return FIPS, nil
	}
	return "", fmt.Errorf("unknown stand-in flavour %q: use standard or fips", s)
}

// String is the flavour's name.
func (f Flavour) String() string {
	if f == Standard {
		return "standard"
	}
	return string(f)
}

// Supports says why the flavour cannot be built for a on this host, or "" when it can.
func (f Flavour) Supports(a arch.Arch) string {
	if f == FIPS && !a.Native() {
		host := runtime.GOARCH
		if h, err := arch.Host(); err == nil {
			host = h.Name
		}
		return "the FIPS stand-in's OpenSSL provider is compiled on the host, so it is built for the host's architecture (" + host + ") only, not " + a.Name
	}
	return ""
}

// layer is what the flavour adds to the stand-in (its files, hashed into its key).
func (f Flavour) layer() []embed.FS {
	if f == FIPS {
		return []embed.FS{fipsFS}
	}
	return nil
}

// imageName is the image's file-name stem: "standin" or "standin-fips".
func (f Flavour) imageName() string {
	if f == Standard {
		return "standin"
	}
	return "standin-" + string(f)
}

// Options configure a build.
type Options struct {
	Arch     arch.Arch
	Flavour  Flavour
	CacheDir string    // default: CacheDir()
	Log      io.Writer // progress; default os.Stderr
	Force    bool      // rebuild even when cached
}

// CacheDir is where images and downloaded packages are kept: $VMTEST_CACHE, else
// $XDG_CACHE_HOME/azl-vmtest, else ~/.cache/azl-vmtest (see harness/cache).
func CacheDir() string { return cache.Dir() }

// Key is the cache key of flavour f's image for a: a hash of the recipe, the builder, the
// flavour's layer and the arch.
func Key(a arch.Arch, f Flavour) string {
	h := sha256.New()
	fmt.Fprintf(h, "arch=%s\nsuite=%s\npackages=%s\n", a.Name, Suite, strings.Join(Packages(a), " "))
	if f != Standard {
		fmt.Fprintf(h, "flavour=%s\n", f)
	}
	for _, fsys := range append([]embed.FS{recipeFS}, f.layer()...) {
		var paths []string
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				paths = append(paths, p)
			}
			return nil
		})
		sort.Strings(paths)
		for _, p := range paths {
			b, _ := fsys.ReadFile(p)
			fmt.Fprintf(h, "%s %d\n", p, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ImagePath is where flavour f's image for a lives once built.
func ImagePath(cacheDir string, a arch.Arch, f Flavour) string {
	return filepath.Join(cacheDir, "images", fmt.Sprintf("%s-%s-%s.qcow2", f.imageName(), a.Name, Key(a, f)))
}

// Packages is the package set for a.
func Packages(a arch.Arch) []string {
	b, _ := recipeFS.ReadFile("recipe/packages.txt")
	pkgs := []string{a.KernelPackage, a.GrubPackage, a.GrubSignedPackage}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			pkgs = append(pkgs, l)
		}
	}
	return pkgs
}

// Build returns the cached image for opts.Arch, building it first when needed. A concurrent
// build of the same architecture waits on a lock and then reuses the result.
func Build(ctx context.Context, opts Options) (string, error) {
	if opts.CacheDir == "" {
		opts.CacheDir = CacheDir()
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if why := opts.Flavour.Supports(opts.Arch); why != "" {
		return "", errors.New(why)
	}
	name := opts.Flavour.imageName() + "-" + opts.Arch.Name // "standin-x86_64", "standin-fips-x86_64"
	out := ImagePath(opts.CacheDir, opts.Arch, opts.Flavour)
	if !opts.Force {
		if _, err := os.Stat(out); err == nil {
			fmt.Fprintf(opts.Log, "standin: %s image cached: %s\n", name, out)
			return out, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(ctx, filepath.Join(opts.CacheDir, "images", name+".lock"), opts.Log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if !opts.Force {
		if _, err := os.Stat(out); err == nil { // built while we waited
			fmt.Fprintf(opts.Log, "standin: %s image built by another process: %s\n", name, out)
			return out, nil
		}
	}
	if err := preflight(opts.Arch, opts.Flavour); err != nil {
		return "", err
	}
	removeStaleBuilds(filepath.Join(opts.CacheDir, "images"), name, opts.Log)
	b := &builder{opts: opts, start: time.Now()}
	if err := b.run(ctx, out); err != nil {
		return "", fmt.Errorf("building the %s stand-in image: %w", name, err)
	}
	pruneOldImages(out, name, opts.Log)
	return out, nil
}

// preflight fails fast, naming the fix, when the host cannot build the image.
func preflight(a arch.Arch, f Flavour) error {
	if os.Geteuid() != 0 {
		return errors.New("building the stand-in image needs root (mmdebstrap's root mode keeps file ownership for mkfs.ext4 -d): run `sudo make image`")
	}
	// apt-get and dpkg-deb fetch and change recipe/newer.txt's packages.
	tools := []string{"mmdebstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "mmd", "sfdisk", "qemu-img", "eatmydata", "apt-get", "dpkg-deb"}
	if f == FIPS {
		tools = append(tools, fipsBuildTools...)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run scripts/host-setup.sh as root", tool)
		}
	}
	if !a.Native() {
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-" + a.Name); err != nil {
			return fmt.Errorf("cannot run %s programs on this host (no binfmt_misc handler qemu-%s): run scripts/host-setup.sh as root (installs qemu-user-static, mounts binfmt_misc, enables the handler)", a.Name, a.Name)
		}
	}
	return nil
}

// pruneOldImages removes the images of this flavour and architecture (name, e.g.
// "standin-x86_64") built from older recipes (the caller holds the build lock). A VM still
// running on one keeps its open file until it stops.
func pruneOldImages(current, name string, log io.Writer) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(current), name+"-*.qcow2"))
	for _, p := range old {
		if p != current {
			fmt.Fprintf(log, "standin: removing image of an older recipe %s\n", p)
			_ = os.Remove(p)
		}
	}
}

// removeStaleBuilds deletes work folders of this flavour's and architecture's interrupted
// builds (the caller holds the build lock, so none is live), unmounting what an interrupted
// mmdebstrap left mounted first; a folder that still has mounts is left alone rather than
// deleted through them.
func removeStaleBuilds(dir, name string, log io.Writer) {
	stale, _ := filepath.Glob(filepath.Join(dir, "build-"+name+"-*"))
	for _, d := range stale {
		fmt.Fprintf(log, "standin: removing interrupted build %s\n", d)
		removeBuildDir(d, log)
	}
}

// removeBuildDir unmounts what is mounted below d and deletes it, never through a mount.
func removeBuildDir(d string, log io.Writer) {
	for _, mp := range mountsUnder(d) {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if left := mountsUnder(d); len(left) > 0 {
		fmt.Fprintf(log, "standin: leaving %s: still mounted: %s\n", d, strings.Join(left, " "))
		return
	}
	_ = os.RemoveAll(d)
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			out = append(out, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func lock(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !told {
			fmt.Fprintf(log, "standin: another build holds %s; waiting for it\n", path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

type builder struct {
	opts  Options
	start time.Time
}

func (b *builder) stage(format string, args ...any) {
	fmt.Fprintf(b.opts.Log, "standin [%s +%5.1fs] %s\n", b.opts.Arch.Name, time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// cmd runs a host command, streaming its output to the log with a prefix.
func (b *builder) cmd(ctx context.Context, name string, args ...string) error {
	return b.cmdAt(ctx, "", nil, name, args...)
}

// cmdIn runs a tool with stdin (argv, never a shell line: paths come from VMTEST_CACHE and
// HOME, which a shell would expand), its output kept for the error and shown with
// VMTEST_VERBOSE.
func (b *builder) cmdIn(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	return b.cmdAt(ctx, "", stdin, name, args...)
}

// cmdAt is cmdIn run in folder dir ("": the current one).
func (b *builder) cmdAt(ctx context.Context, dir string, stdin io.Reader, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Stdin = stdin
	// On Ctrl-C let the tool clean up (mmdebstrap unmounts its chroot) before it is killed.
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	c.WaitDelay = time.Minute
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	done := make(chan struct{})
	var tail []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			tail = append(tail, sc.Text())
			if len(tail) > 30 {
				tail = tail[1:]
			}
			if os.Getenv("VMTEST_VERBOSE") != "" {
				fmt.Fprintf(b.opts.Log, "    %s\n", sc.Text())
			}
		}
		// A line over the scanner's limit ends the scan: keep draining, or the tool blocks on
		// its full pipe for ever.
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := c.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return nil
}

func writeRecipe(dst string) error {
	return fs.WalkDir(recipeFS, "recipe", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(p, "recipe"))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := recipeFS.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
