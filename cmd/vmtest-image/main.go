// Command vmtest-image builds (or finds in the cache) the stand-in guest images.
//
//	vmtest-image build [-arch x86_64,aarch64] [-force]   build what is missing, print the paths
//	vmtest-image path  [-arch x86_64]                    print where the image is (or would be)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "path":
		for _, a := range list {
			fmt.Println(standin.ImagePath(standin.CacheDir(), a))
		}
	case "build":
		for _, a := range list {
			start := time.Now()
			p, err := standin.Build(ctx, standin.Options{Arch: a, Force: *force})
			die(err)
			fmt.Fprintf(os.Stderr, "standin: %s ready in %.1fs\n", a.Name, time.Since(start).Seconds())
			fmt.Println(p)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmtest-image build|path [-arch x86_64,aarch64] [-force]")
	os.Exit(2)
}

func die(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest-image:", err)
		os.Exit(1)
	}
}
