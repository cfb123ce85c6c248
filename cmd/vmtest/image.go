package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/savedstate"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// imageCmd: the stand-in images and the saved booted states made from them.
//
//	vmtest image build [-arch x86_64,aarch64] [-flavour standard,fips] [-force]
//	                   build what is missing (each architecture at once), print the paths
//	vmtest image path  [-arch A] [-flavour F]   where the image is (or would be)
//	vmtest image list                           cached images (current or stale) and saved states
//	vmtest image prune [-dry-run]               delete stale images and orphaned saved states
//
// A flavour that cannot be built for an architecture on this host (the FIPS stand-in is built
// for the host's architecture only) is left out with a note saying why.
func imageCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: vmtest image build|path|list|prune [-arch x86_64,aarch64] [-flavour standard,fips] [-force] [-dry-run]")
	}
	fl := flag.NewFlagSet("image "+args[0], flag.ContinueOnError)
	arches := fl.String("arch", "", "comma-separated architectures (default: the host's)")
	flavours := fl.String("flavour", "standard", "comma-separated stand-in flavours: standard, fips")
	force := fl.Bool("force", false, "build: rebuild even when cached")
	dryRun := fl.Bool("dry-run", false, "prune: report only")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	switch args[0] {
	case "build", "path":
		images, err := wanted(*arches, *flavours)
		if err != nil {
			return err
		}
		if args[0] == "path" {
			for _, im := range images {
				fmt.Println(standin.ImagePath(standin.CacheDir(), im.a, im.f))
			}
			return nil
		}
		paths, err := build(ctx, images, *force)
		for _, p := range paths {
			if p != "" {
				fmt.Println(p)
			}
		}
		return err
	case "list":
		return listImages(os.Stdout)
	case "prune":
		return pruneImages(os.Stdout, *dryRun)
	}
	return fmt.Errorf("vmtest image %s: use build, path, list or prune", args[0])
}

type image struct {
	a arch.Arch
	f standin.Flavour
}

// wanted is every (architecture, flavour) asked for that this host can build.
func wanted(arches, flavours string) ([]image, error) {
	var list []arch.Arch
	if arches == "" {
		h, err := arch.Host()
		if err != nil {
			return nil, err
		}
		list = append(list, h)
	} else {
		for _, n := range strings.Split(arches, ",") {
			a, err := arch.Lookup(n)
			if err != nil {
				return nil, err
			}
			list = append(list, a)
		}
	}
	var images []image
	for _, n := range strings.Split(flavours, ",") {
		f, err := standin.ParseFlavour(n)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if why := f.Supports(a); why != "" {
				fmt.Fprintf(os.Stderr, "vmtest image: no %s stand-in for %s: %s\n", f, a.Name, why)
				continue
			}
			images = append(images, image{a, f})
		}
	}
	return images, nil
}

// build builds the images, one goroutine per architecture with its flavours one after the other
// (they share the architecture's package cache): a cross-architecture build (minutes under
// qemu-user) then costs little more wall time than the host's own.
func build(ctx context.Context, images []image, force bool) ([]string, error) {
	paths := make([]string, len(images))
	errs := make([]error, len(images))
	byArch := map[string][]int{}
	for i, im := range images {
		byArch[im.a.Name] = append(byArch[im.a.Name], i)
	}
	// The builders' steps: one live line on a terminal, a line each in a log.
	prog := newProgress(os.Stderr)
	defer prog.Done()
	var log io.Writer = prog
	var wg sync.WaitGroup
	for _, idx := range byArch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range idx {
				im, start := images[i], time.Now()
				paths[i], errs[i] = standin.Build(ctx, standin.Options{Arch: im.a, Flavour: im.f, Force: force, Log: log})
				if errs[i] != nil {
					return
				}
				prog.Logf("standin: %s %s ready in %.1fs", im.f, im.a.Name, time.Since(start).Seconds())
			}
		}()
	}
	wg.Wait()
	return paths, errors.Join(errs...)
}

// cached is an image file in the cache, and whether it is the current recipe's.
type cached struct {
	path    string
	size    int64
	mod     time.Time
	current bool
}

func cachedImages() ([]cached, error) {
	current := map[string]bool{}
	for _, a := range arch.All() {
		for _, f := range standin.Flavours() {
			current[standin.ImagePath(standin.CacheDir(), a, f)] = true
		}
	}
	paths, err := filepath.Glob(filepath.Join(standin.CacheDir(), "images", "*.qcow2"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []cached
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		out = append(out, cached{p, st.Size(), st.ModTime(), current[p]})
	}
	return out, nil
}

func listImages(w io.Writer) error {
	images, err := cachedImages()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-48s %9s %-17s %s\n", "IMAGE", "MiB", "BUILT", "STATE")
	for _, im := range images {
		state := "current"
		if !im.current {
			state = "stale: an older recipe (vmtest image prune)"
		}
		fmt.Fprintf(w, "%-48s %9d %-17s %s\n", filepath.Base(im.path), im.size>>20, im.mod.Format("2006-01-02 15:04"), state)
	}
	_, states, err := savedStates()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%-18s %-8s %-48s %9s %s\n", "SAVED STATE", "ARCH", "FROM IMAGE", "MiB", "STATE")
	for _, s := range states {
		state := "usable"
		if s.Stale != "" {
			state = "stale: " + s.Stale + " (vmtest image prune)"
		}
		fmt.Fprintf(w, "%-18s %-8s %-48s %9d %s\n", s.Key, s.Arch, filepath.Base(s.Image), s.Size>>20, state)
	}
	return nil
}

func pruneImages(w io.Writer, dryRun bool) error {
	images, err := cachedImages()
	if err != nil {
		return err
	}
	var freed int64
	for _, im := range images {
		if im.current {
			continue
		}
		fmt.Fprintf(w, "image %s (%d MiB): stale\n", filepath.Base(im.path), im.size>>20)
		if !dryRun {
			if err := os.Remove(im.path); err != nil {
				return err
			}
		}
		freed += im.size
	}
	root, states, err := savedStates()
	if err != nil {
		return err
	}
	for _, s := range states {
		if s.Stale == "" {
			continue
		}
		fmt.Fprintf(w, "saved state %s (%d MiB): %s\n", s.Key, s.Size>>20, s.Stale)
		if !dryRun {
			if err := savedstate.Remove(root, s.Key); err != nil {
				return err
			}
		}
		freed += s.Size
	}
	if !dryRun {
		if n := savedstate.PruneLocks(root); n > 0 {
			fmt.Fprintf(w, "lock files of saved states no longer there: %d removed\n", n)
		}
	}
	verb := "freed"
	if dryRun {
		verb = "would free"
	}
	fmt.Fprintf(w, "%s %d MiB\n", verb, freed>>20)
	return nil
}

// savedStates are the saved booted states in the cache, and where they live.
func savedStates() (string, []savedstate.Info, error) {
	root, err := savedstate.Root()
	if err != nil {
		return "", nil, err
	}
	states, err := savedstate.List(root)
	return root, states, err
}
