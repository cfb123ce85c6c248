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
//
// State lives in $VMTEST_CACHE/run/<name>/ (0700): the spawner holds a lock on it while the VM
// runs, so list and stop work from any terminal and know when the spawner is gone.
//
// The standard library's flag package with one FlagSet per subcommand is enough for seven
// subcommands and keeps the tool free of a CLI framework.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// state is what spawn writes for the other subcommands.
type state struct {
	Name, Target, KeyFile, HostKeyLine, KnownHosts string
	Arch, Profile, Image, ConsoleLog               string
	Pid                                            int
	Started                                        time.Time
}

func (s state) env() []string {
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
	fmt.Fprintln(os.Stderr, "usage: vmtest spawn|list|ssh|test|stop|image|azure ... (see go doc ./cmd/vmtest)")
	os.Exit(2)
}

// exitCode is a guest command's non-zero exit, passed on as vmtest's own.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func runDir() (string, error) { return cache.Sub("run") }

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
	root, err := runDir()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, *name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("a VM named %s exists (vmtest list; vmtest stop %s)", *name, *name)
		}
		return err
	}
	defer os.RemoveAll(dir)
	lock, ok, err := cache.TryLock(filepath.Join(dir, "lock"))
	if err != nil || !ok {
		return fmt.Errorf("locking %s: %v", dir, err)
	}
	defer lock.Unlock()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	m, err := harness.Open(ctx, "spawn-"+*name, opts...)
	if err != nil {
		return err
	}
	defer m.Close()
	access, err := m.WriteSSHAccess(dir)
	if err != nil {
		return err
	}
	st := state{Name: *name, Target: access.Target, KeyFile: access.KeyFile, HostKeyLine: access.HostKeyLine,
		KnownHosts: access.KnownHosts, Arch: m.Arch().Name, Profile: m.Profile().Name, Image: *image,
		ConsoleLog: m.ConsoleLog(), Pid: os.Getpid(), Started: time.Now()}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		return err
	}
	fmt.Printf("vmtest: %s is up (%s, profile %s)\n  vmtest ssh %s -- cat /etc/os-release\n  %s\n  console: %s\n  vmtest test %s ./suites/boot/\n  vmtest stop %s (or Ctrl-C here)\n",
		*name, st.Arch, st.Profile, *name, opensshLine(st), st.ConsoleLog, *name, *name)
	<-ctx.Done()
	fmt.Printf("vmtest: stopping %s\n", *name)
	return nil
}

// opensshLine is the OpenSSH command that reaches the VM with the pinned host key.
func opensshLine(s state) string {
	host, port, _ := strings.Cut(strings.TrimPrefix(s.Target, "ssh://"), ":")
	return fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -p %s %s", s.KeyFile, s.KnownHosts, port, host)
}

// load reads every kept VM's state; a VM whose spawner died is reported and its state removed.
func load() ([]state, error) {
	root, err := runDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []state
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if l, free, err := cache.TryLock(filepath.Join(dir, "lock")); err == nil && free {
			l.Unlock()
			fmt.Fprintf(os.Stderr, "vmtest: %s: its spawner is gone (killed?): state removed\n", e.Name())
			os.RemoveAll(dir)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil {
			continue // still starting
		}
		var s state
		if err := json.Unmarshal(b, &s); err == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func find(name string) (state, error) {
	all, err := load()
	if err != nil {
		return state{}, err
	}
	for _, s := range all {
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
	fmt.Printf("%-16s %-34s %-8s %-16s %-8s %s\n", "NAME", "TARGET", "ARCH", "PROFILE", "AGE", "PID")
	for _, s := range all {
		fmt.Printf("%-16s %-34s %-8s %-16s %-8s %d\n", s.Name, s.Target, s.Arch, s.Profile, time.Since(s.Started).Round(time.Second), s.Pid)
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
		line := strings.Fields(opensshLine(s))
		path, err := exec.LookPath(line[0])
		if err != nil {
			return fmt.Errorf("an interactive session needs OpenSSH's client (apt-get install openssh-client); or run a command: vmtest ssh %s -- CMD", s.Name)
		}
		return syscall.Exec(path, line, os.Environ())
	}
	for _, kv := range s.env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	m, err := harness.Open(ctx, "ssh-"+s.Name, harness.WithBootTimeout(30*time.Second))
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
	cmd.Env = append(os.Environ(), s.env()...)
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
	root, err := runDir()
	if err != nil {
		return err
	}
	for _, s := range targets {
		if err := syscall.Kill(s.Pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("%s: signalling its spawner (pid %d): %w", s.Name, s.Pid, err)
		}
		// The spawner holds the lock until QEMU is closed: waiting for it is waiting for that.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		l, err := cache.AcquireLock(ctx, filepath.Join(root, s.Name, "lock"), nil)
		cancel()
		switch {
		case err == nil:
			// The spawner is gone (the harness's signal handler stops its VMs and exits): its
			// state is the stopper's to remove.
			l.Unlock()
			os.RemoveAll(filepath.Join(root, s.Name))
		case errors.Is(err, os.ErrNotExist): // already removed: stopped
		case ctx.Err() != nil:
			return fmt.Errorf("%s: its spawner (pid %d) did not stop within 30 s", s.Name, s.Pid)
		default:
			return err
		}
		fmt.Printf("vmtest: %s stopped\n", s.Name)
	}
	return nil
}
