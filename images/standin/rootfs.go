package standin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func (b *builder) run(ctx context.Context, out string) error {
	a := b.opts.Arch
	work, err := os.MkdirTemp(filepath.Join(b.opts.CacheDir, "images"), "build-"+b.opts.Flavour.imageName()+"-"+a.Name+"-")
	if err != nil {
		return err
	}
	defer removeBuildDir(work, b.opts.Log)
	b.stage("%s flavour, recipe key %s; work dir %s", b.opts.Flavour, Key(a, b.opts.Flavour), work)

	recipe := filepath.Join(work, "recipe")
	if err := writeRecipe(recipe); err != nil {
		return err
	}
	sources, err := hostSources(a)
	if err != nil {
		return err
	}
	srcFile := filepath.Join(work, "sources.list")
	if err := os.WriteFile(srcFile, []byte(sources), 0o644); err != nil {
		return err
	}
	debs := filepath.Join(b.opts.CacheDir, "debs", a.Debian)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}

	// recipe/newer.txt's packages, installed from local files at the same path inside the
	// root filesystem, and removed from it before the recipe's own customize hook.
	newer, newerDebs, err := b.newerDebs(ctx, work, sources)
	if err != nil {
		return err
	}
	var newerArgs []string
	if newer != "" {
		defer os.RemoveAll(newer)
		newerArgs = append(newerArgs, fmt.Sprintf(`--setup-hook=mkdir -p "$1"%[1]q && cp -t "$1"%[1]q %[2]s`, newer, shellQuoteAll(newerDebs)))
		for _, d := range newerDebs {
			newerArgs = append(newerArgs, "--include="+d)
		}
		newerArgs = append(newerArgs, fmt.Sprintf(`--customize-hook=rm -rf "$1"%q`, newer))
	}

	// A flavour's layer runs after the recipe's own customize hook.
	layer, err := b.layerHooks(ctx, work)
	if err != nil {
		return err
	}
	rootfs := filepath.Join(work, "rootfs")
	b.stage("root filesystem: mmdebstrap %s/%s, %d packages and %d newer (cross-architecture builds run under qemu-user and take minutes)", Suite, a.Debian, len(Packages(a)), len(newerDebs))
	args := []string{
		"--variant=apt", "--arch=" + a.Debian, "--mode=root", "--format=directory",
		"--include=" + strings.Join(Packages(a), ","),
		"--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
		"--aptopt=Acquire::Retries \"3\"",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		// Downloaded packages are reused across builds: in before apt runs, out before cleanup.
		fmt.Sprintf(`--setup-hook=mkdir -p "$1/var/cache/apt/archives" && find %q -maxdepth 1 -name '*.deb' -exec cp -t "$1/var/cache/apt/archives/" {} +`, debs),
		fmt.Sprintf(`--customize-hook=find "$1/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t %q {} +`, debs),
	}
	args = append(args, newerArgs...)
	args = append(args,
		fmt.Sprintf(`--customize-hook=sync-in %q /`, filepath.Join(recipe, "overlay")),
		fmt.Sprintf(`--customize-hook=sh %q "$1"`, filepath.Join(recipe, "customize.sh")),
	)
	args = append(args, layer...)
	args = append(args, Suite, rootfs, srcFile)
	if err := b.cmd(ctx, "mmdebstrap", args...); err != nil {
		return err
	}
	b.stage("root filesystem done")
	raw := filepath.Join(work, "disk.raw")
	if err := b.assembleDisk(ctx, rootfs, work, raw); err != nil {
		return err
	}
	b.stage("qcow2: converting")
	tmp := out + ".tmp"
	if err := b.cmd(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	if st, err := os.Stat(out); err == nil {
		b.stage("done: %s (%d MiB)", out, st.Size()>>20)
	}
	return nil
}

// shellQuoteAll quotes paths for sh, each in single quotes.
func shellQuoteAll(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
