package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
	"github.com/azl-vmtest/azl-vmtest/harness/timeline"
	"github.com/azl-vmtest/azl-vmtest/harness/unitcpu"
	"github.com/azl-vmtest/azl-vmtest/images/standin"
)

// saveArtifacts writes what is needed to debug the machine to dst: the console log, QEMU's argv,
// the user-data, the boot stages (text and a timeline picture) and, if the guest still answers,
// its journal, cloud-init log, kernel log, boot chart (systemd-analyze plot) and CPU time by
// unit (harness/unitcpu). Pipelines
// upload artifacts: no private key is ever written (the user-data's host key is redacted; the
// test user's key stays in the VM's private folder).
func (m *Machine) saveArtifacts(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var errs []error
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(redact(content)), mode); err != nil {
			errs = append(errs, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "console.log")); err == nil {
		write("console.log", string(b), 0o644)
	}
	if vm := m.azureVM(); vm != nil {
		// An Azure VM's serial console, through boot diagnostics (what Azure recorded so far).
		ctx, cancel := context.WithTimeout(context.Background(), artifactLogTimeout)
		log, err := m.serialLog(ctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		write("console.log", log, 0o644)
		write("azure.txt", fmt.Sprintf("resource group %s\nSSH %s\n", vm.Group, m.sshCfg.Addr), 0o644)
	}
	if m.inst != nil {
		write("qemu-argv.txt", strings.Join(m.inst.Argv, " \\\n  ")+"\n", 0o644)
	}
	write("user-data", string(m.userData), 0o644)
	write("boot-stages.txt", m.Stages.String()+"\n", 0o644)
	if m.inst != nil {
		write("boot-stages.svg", string(timeline.SVG("vm "+m.name+": the harness's stages", m.Stages.Marks())), 0o644)
	}
	if m.sshClient() != nil && m.Dead() == nil {
		logErrs := readArtifactLogs(m.Run, artifactLogTimeout, func(name, content string) { write(name, content, 0o644) })
		errs = append(errs, logErrs...)
	}
	return errors.Join(errs...)
}

// artifactLogs are the guest's logs an artifact folder gets, each read on its own, and written
// as read or as format makes them.
var artifactLogs = []struct {
	file, cmd string
	format    func(string) (string, error)
}{
	{"journal.txt", "sudo journalctl -b --no-pager -o short-monotonic", nil},
	{"cloud-init.log", "sudo cat /var/log/cloud-init.log", nil},
	{"dmesg.txt", "sudo dmesg", nil},
	{"boot-chart.svg", "systemd-analyze plot", nil}, // the guest's own view of its boot, as a picture
	// Who used the guest's CPU: under TCG a slow boot or test is the guest's work, by unit.
	{"unit-cpu.txt", unitcpu.Command, func(out string) (string, error) {
		r, err := unitcpu.Parse(out)
		return r.String(), err
	}},
}

// artifactLogTimeout bounds each log read.
const artifactLogTimeout = 30 * time.Second

// readArtifactLogs reads each of artifactLogs with run, each with its own bound (a journal too
// long to read in time costs only the journal), writes what it got, and returns one error per
// log it could not read, naming the log. A guest found dead fails the reads at once (Run checks).
func readArtifactLogs(run func(context.Context, string) (ssh.Result, error), bound time.Duration, write func(name, content string)) []error {
	var errs []error
	for _, l := range artifactLogs {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		res, err := run(ctx, l.cmd)
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case timedOut:
			errs = append(errs, fmt.Errorf("%s: the guest did not send it within %s", l.file, bound))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", l.file, err))
		case res.ExitCode != 0:
			errs = append(errs, fmt.Errorf("%s: %q exited %d: %s", l.file, l.cmd, res.ExitCode, strings.TrimSpace(string(res.Stderr))))
		}
		if len(res.Stdout) == 0 {
			continue
		}
		content := string(res.Stdout)
		if l.format != nil && err == nil && !timedOut && res.ExitCode == 0 {
			formatted, ferr := l.format(content)
			if ferr != nil {
				errs = append(errs, fmt.Errorf("%s: written as the guest sent it: %w", l.file, ferr))
			} else {
				content = formatted
			}
		}
		write(l.file, content)
	}
	return errs
}

var privateKey = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)

// redact replaces every PEM private key in s.
func redact(s string) string {
	return privateKey.ReplaceAllString(s, "<private key redacted by azl-vmtest>")
}

// artifactDir is where a test's artifacts go: <artifacts>/<arch>/<package>/<test> (the
// architecture as "x86_64-fips" on a stand-in flavour), so that the same test on two
// architectures or flavours, or two packages' tests of the same name, never share a folder.
func (m *Machine) artifactDir(testName string) string {
	label := m.cfg.Arch.Name
	if m.cfg.Standin != standin.Standard {
		label += "-" + m.cfg.Standin.String()
	}
	return filepath.Join(m.cfg.Artifacts, label, packageName(), sanitize(strings.ReplaceAll(testName, "/", "__")))
}

// recordStart appends how a machine was started (boot, restore, or save: a boot to build a
// saved state) to $VMTEST_ARTIFACTS/vm-starts.tsv, so a whole run can count its real boots and
// restores across test processes (scripts/vmtests.sh prints the count). d is how long it took
// to be ready, or for a machine started with foreign user-data (which the harness does not log
// in to: its target waits for it) to have QEMU running.
func recordStart(cfg Config, kind, name string, d time.Duration) {
	appendVMStart(cfg, fmt.Sprintf("%s\t%s\t%s\t%.1f\n", kind, cfg.Arch.Name, name, d.Seconds()))
}

// recordUsage appends, when QEMU has exited, the host CPU time it used and how long it lived
// ("cpu" rows of vm-starts.tsv): on a CPU-bound host (TCG) the summary's list of the VMs that
// cost most says where a run's time goes.
func recordUsage(cfg Config, name string, cpu, life time.Duration) {
	appendVMStart(cfg, fmt.Sprintf("cpu\t%s\t%s\t%.1f\t%.1f\n", cfg.Arch.Name, name, cpu.Seconds(), life.Seconds()))
}

func appendVMStart(cfg Config, line string) {
	if err := os.MkdirAll(cfg.Artifacts, 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(cfg.Artifacts, "vm-starts.tsv"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// One write per line: O_APPEND keeps concurrent processes' lines whole.
	_, _ = f.WriteString(line)
}
