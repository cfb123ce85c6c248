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
)

// saveArtifacts writes what is needed to debug the machine to dst: the console log, QEMU's argv,
// the user-data, the boot stages and, if the guest still answers, its journal, cloud-init log
// and kernel log. Pipelines upload artifacts: no private key is ever written (the user-data's
// host key is redacted; the test user's key stays in the VM's private folder).
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
	if m.inst != nil {
		write("qemu-argv.txt", strings.Join(m.inst.Argv, " \\\n  ")+"\n", 0o644)
	}
	write("user-data", string(m.userData), 0o644)
	write("boot-stages.txt", m.Stages.String()+"\n", 0o644)
	if m.sshClient() != nil && m.Dead() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		names := []string{"journal.txt", "cloud-init.log", "dmesg.txt"}
		res, err := m.RunAll(ctx, "sudo journalctl -b --no-pager -o short-monotonic",
			"sudo cat /var/log/cloud-init.log", "sudo dmesg")
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the guest's logs: %w", err))
		}
		for i, r := range res {
			write(names[i], string(r.Stdout), 0o644)
		}
	}
	return errors.Join(errs...)
}

var privateKey = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)

// redact replaces every PEM private key in s.
func redact(s string) string {
	return privateKey.ReplaceAllString(s, "<private key redacted by azl-vmtest>")
}

// artifactDir is where a test's artifacts go: <artifacts>/<arch>/<package>/<test>, so that
// the same test on two architectures, or two packages' tests of the same name, never share a
// folder.
func (m *Machine) artifactDir(testName string) string {
	return filepath.Join(m.cfg.Artifacts, m.cfg.Arch.Name, packageName(), sanitize(strings.ReplaceAll(testName, "/", "__")))
}

// recordStart appends how a machine was started (boot, restore, or save: a boot to build a
// saved state) to $VMTEST_ARTIFACTS/vm-starts.tsv, so a whole run can count its real boots and
// restores across test processes (scripts/vmtests.sh prints the count).
func recordStart(cfg Config, kind, name string, d time.Duration) {
	if err := os.MkdirAll(cfg.Artifacts, 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(cfg.Artifacts, "vm-starts.tsv"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// One write per line: O_APPEND keeps concurrent processes' lines whole.
	_, _ = fmt.Fprintf(f, "%s\t%s\t%s\t%.1f\n", kind, cfg.Arch.Name, name, d.Seconds())
}
