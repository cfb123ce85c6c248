// Command vmtest-image builds (or finds in the cache) the stand-in guest images.
//
//	vmtest-image build [-arch x86_64,aarch64] [-flavour standard,fips] [-force]
//	                   build what is missing, print the paths
//	vmtest-image path  [-arch x86_64] [-flavour fips]   print where the image is (or would be)
//
// A flavour that cannot be built for an architecture on this host (the FIPS stand-in is built
// for the host's architecture only) is left out with a note saying why.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fl := flag.NewFlagSet(cmd, flag.ExitOnError)
	arches := fl.String("arch", "", "comma-separated architectures (default: the host's)")
	flavours := fl.String("flavour", "standard", "comma-separated stand-in flavours: standard, fips")
	force := fl.Bool("force", false, "rebuild even when cached")
	_ = fl.Parse(os.Args[2:])

	var list []arch.Arch
	if *arches == "" {
		h, err := arch.Host()
		die(err)
		list = append(list, h)
	} else {
		for _, n := range strings.Split(*arches, ",") {
			a, err := arch.Lookup(n)
			die(err)
			list = append(list, a)
		}
	}
	var fls []standin.Flavour
	for _, n := range strings.Split(*flavours, ",") {
		f, err := standin.ParseFlavour(n)
		die(err)
		fls = append(fls, f)
	}
	type image struct {
		a arch.Arch
		f standin.Flavour
	}
	var images []image
	for _, f := range fls {
		for _, a := range list {
			if why := f.Supports(a); why != "" {
				fmt.Fprintf(os.Stderr, "vmtest-image: no %s stand-in for %s: %s\n", f, a.Name, why)
				continue
			}
			images = append(images, image{a, f})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "path":
		for _, im := range images {
			fmt.Println(standin.ImagePath(standin.CacheDir(), im.a, im.f))
		}
	case "build":
		// One goroutine per architecture, its flavours one after the other (they share the
		// architecture's package cache): a cross-architecture build (minutes under qemu-user)
		// then costs little more wall time than the host's own.
		paths := make([]string, len(images))
		errs := make([]error, len(images))
		var wg sync.WaitGroup
		for _, a := range list {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, im := range images {
					if im.a.Name != a.Name {
						continue
					}
					start := time.Now()
					paths[i], errs[i] = standin.Build(ctx, standin.Options{Arch: im.a, Flavour: im.f, Force: *force})
					if errs[i] != nil {
						return
					}
					fmt.Fprintf(os.Stderr, "standin: %s %s ready in %.1fs\n", im.f, im.a.Name, time.Since(start).Seconds())
				}
			}()
		}
		wg.Wait()
		die(errors.Join(errs...))
		for _, p := range paths {
			fmt.Println(p)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmtest-image build|path [-arch x86_64,aarch64] [-flavour standard,fips] [-force]")
	os.Exit(2)
}

func die(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-image:", err)
		os.Exit(1)
	}
}
