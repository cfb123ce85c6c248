// Command vmtest keeps a VM for a contributor reproducing a bug: it boots one exactly as a suite
// does (the same seed, keys, profile detection and saved-state restore) and lets other
// terminals reach it until it is stopped.
//
//	vmtest spawn [-name N] [-image PATH] [-standin standard|fips] [-arch A] [-mem MiB] [-cpus N] [-tpm] [-secure-boot] [-fresh]
//	             boot, print how to reach it, keep it until Ctrl-C or `vmtest stop N`
//	vmtest list                  the kept VMs (name, target, arch, profile, age); a VM whose
//	                             spawner died is reported and its state removed
//	vmtest ssh N [-- CMD...]     run CMD on it (through the harness's pinned-key client), or
//	                             open an interactive OpenSSH session without CMD
//	vmtest test N PKG [ARGS...]  go test PKG against it through the ssh target
//	vmtest stop N | -all         stop it (its spawner closes QEMU and removes its state)
//	vmtest image build|path|list|prune [-arch A,B] [-flavour standard,fips] [-force] [-dry-run]
//	                             the stand-in images and saved booted states (see image.go)
//	vmtest azure reap [-older-than 6h] [-dry-run]
//	                             delete the resource groups azure-target runs left behind
//	                             (tagged azl-vmtest-run) in AZURE_SUBSCRIPTION_ID
//	vmtest host-reference        the host's reference time in ms (harness/bench: a fixed piece of
//	                             CPU work, median of five), to tell two runs' hosts apart
//
// State lives in $VMTEST_CACHE/run/<name>/ (0700): the spawner holds a lock on it while the VM
// runs, so list and stop work from any terminal and know when the spawner is gone.
//
// The standard library's flag package with one FlagSet per subcommand is enough for eight
// subcommands and keeps the tool free of a CLI framework.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/bench"
	"github.com/azl-vmtest/azl-vmtest/harness/runstate"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
)

// state is what spawn (or a failing test with VMTEST_KEEP=vm-on-failure) writes for the other
// subcommands.
type state = runstate.State

func env(s state) []string {
	return harness.SSHAccess{Target: s.Target, KeyFile: s.KeyFile, HostKeyLine: s.HostKeyLine}.Env()
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "spawn":
		err = spawn(args)
	case "list":
		err = list()
	case "ssh":
		err = sshCmd(args)
	case "test":
		err = testCmd(args)
	case "stop":
		err = stop(args)
	case "azure":
		err = azureCmd(args)
	case "image":
		err = imageCmd(args)
	case "host-reference":
		fmt.Printf("%.0f\n", bench.Millis(bench.Reference(5)))
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		var exit exitCode
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vmtest spawn|list|ssh|test|stop|image|azure|host-reference ... (see go doc ./cmd/vmtest)")
	os.Exit(2)
}

// exitCode is a guest command's non-zero exit, passed on as vmtest's own.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func spawn(args []string) error {
	fl := flag.NewFlagSet("spawn", flag.ExitOnError)
	name := fl.String("name", "", "name (default vm-<pid>)")
	image := fl.String("image", "", "disk image (default: the cached stand-in)")
	flavour := fl.String("standin", "", "stand-in flavour when no -image: standard or fips")
	archName := fl.String("arch", "", "x86_64 or aarch64 (default: the host's)")
	mem := fl.Int("mem", 0, "guest memory, MiB")
	cpus := fl.Int("cpus", 0, "guest CPUs")
	tpm := fl.Bool("tpm", false, "add a TPM 2.0 (swtpm)")
	sb := fl.Bool("secure-boot", false, "boot with Secure Boot (Microsoft keys enrolled)")
	fresh := fl.Bool("fresh", false, "boot for real instead of restoring a saved booted state")
	_ = fl.Parse(args)
	if *name == "" {
		*name = fmt.Sprintf("vm-%d", os.Getpid())
	}
	if *flavour != "" {
		os.Setenv("VMTEST_STANDIN", *flavour)
	}
	var opts []harness.Option
	if *image != "" {
		opts = append(opts, harness.WithImage(*image))
	}
	if *archName != "" {
		a, err := arch.Lookup(*archName)
		if err != nil {
			return err
		}
		opts = append(opts, harness.WithArch(a))
	}
	if *mem > 0 {
		opts = append(opts, harness.WithMemory(*mem))
	}
	if *cpus > 0 {
		opts = append(opts, harness.WithCPUs(*cpus))
	}
	if *tpm {
		opts = append(opts, harness.WithTPM())
	}
	if *sb {
		opts = append(opts, harness.WithSecureBoot())
	}
	if *fresh {
		opts = append(opts, harness.WithFreshBoot())
	}
	entry, err := runstate.Create(*name)
	if err != nil {
		return err
	}
	defer entry.Release()
	// Listed (and stoppable) while it waits for a VM slot or boots: no address yet.
	if err := entry.Write(state{Name: *name, Image: *image, Pid: os.Getpid(), Started: time.Now()}); err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	// The boot's stages: one live line on a terminal, a line each in a log.
	prog := newProgress(os.Stderr)
	m, err := harness.Open(ctx, "spawn-"+*name, append(opts, harness.WithLog(prog.Logf))...)
	prog.Done()
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := m.Register(entry, *image, "")
	if err != nil {
		return err
	}
	// Only the person frees this VM's slot: tests waiting for one must not wait for them.
	defer slots.KeptForPerson()()
	fmt.Printf("vmtest: %s is up (%s, profile %s)\n%s  vmtest stop %s (or Ctrl-C here)\n", *name, st.Arch, st.Profile, harness.HowToReach(st), *name)
	<-ctx.Done()
	fmt.Printf("vmtest: stopping %s\n", *name)
	return nil
}

// load reads every kept VM's state; a VM whose holder died is reported and its state removed.
func load() ([]state, error) {
	all, gone, err := runstate.Load()
	for _, g := range gone {
		fmt.Fprintf(os.Stderr, "vmtest: %s: its spawner is gone (killed?): state removed\n", g)
	}
	return all, err
}

func find(name string) (state, error) {
	all, err := load()
	if err != nil {
		return state{}, err
	}
	for _, s := range all {
		if s.Name == name && s.Target == "" {
			return s, fmt.Errorf("VM %s is still starting (waiting for a VM slot, or booting): try again once vmtest list shows its address", name)
		}
		if s.Name == name {
			return s, nil
		}
	}
	return state{}, fmt.Errorf("no VM named %q (vmtest list)", name)
}

func list() error {
	all, err := load()
	if err != nil {
		return err
	}
	fmt.Printf("%-16s %-34s %-8s %-16s %-8s %-8s %s\n", "NAME", "TARGET", "ARCH", "PROFILE", "AGE", "PID", "KEPT FOR")
	for _, s := range all {
		keptFor := "vmtest spawn"
		if s.Test != "" {
			keptFor = "failed " + s.Test
		}
		if s.Target == "" {
			s.Target = "(starting)"
		}
		fmt.Printf("%-16s %-34s %-8s %-16s %-8s %-8d %s\n", s.Name, s.Target, s.Arch, s.Profile, time.Since(s.Started).Round(time.Second), s.Pid, keptFor)
	}
	return nil
}

func sshCmd(args []string) error {
	if len(args) < 1 {
		usage()
	}
	s, err := find(args[0])
	if err != nil {
		return err
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 { // interactive: OpenSSH has the terminal handling
		line := strings.Fields(harness.OpenSSHLine(s))
		path, err := exec.LookPath(line[0])
		if err != nil {
			return fmt.Errorf("an interactive session needs OpenSSH's client (apt-get install openssh-client); or run a command: vmtest ssh %s -- CMD", s.Name)
		}
		return syscall.Exec(path, line, os.Environ())
	}
	for _, kv := range env(s) {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	// The VM was ready when kept; reaching it again (handshake, is-system-running) is quick
	// on an idle host but, measured under TCG with four VMs on two cores, took over 30 s.
	m, err := harness.Open(ctx, "ssh-"+s.Name, harness.WithBootTimeout(2*time.Minute))
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := m.Run(ctx, strings.Join(rest, " "))
	if err != nil {
		return err
	}
	os.Stdout.Write(res.Stdout)
	os.Stderr.Write(res.Stderr)
	if res.ExitCode != 0 {
		return exitCode(res.ExitCode)
	}
	return nil
}

func testCmd(args []string) error {
	if len(args) < 2 {
		usage()
	}
	s, err := find(args[0])
	if err != nil {
		return err
	}
	cmd := exec.Command("go", append([]string{"test", "-count=1"}, args[1:]...)...)
	cmd.Env = append(os.Environ(), env(s)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return exitCode(ee.ExitCode())
		}
		return err
	}
	return nil
}

func stop(args []string) error {
	if len(args) != 1 {
		usage()
	}
	all, err := load()
	if err != nil {
		return err
	}
	var targets []state
	for _, s := range all {
		if args[0] == "-all" || args[0] == "--all" || s.Name == args[0] {
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 && args[0] != "-all" && args[0] != "--all" {
		return fmt.Errorf("no VM named %q (vmtest list)", args[0])
	}
	for _, s := range targets {
		if err := syscall.Kill(s.Pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("%s: signalling its spawner (pid %d): %w", s.Name, s.Pid, err)
		}
		// The spawner holds the entry until QEMU is closed (the harness's signal handler stops
		// its VMs and exits): waiting for the entry is waiting for that.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runstate.AwaitReleased(ctx, s.Name)
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case err != nil && timedOut:
			return fmt.Errorf("%s: its spawner (pid %d) did not stop within 30 s", s.Name, s.Pid)
		case err != nil:
			return err
		}
		fmt.Printf("vmtest: %s stopped\n", s.Name)
	}
	return nil
}
