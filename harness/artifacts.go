package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// saveArtifacts writes what is needed to debug the machine to dst: the console log, QEMU's argv,
// the user-data, the boot stages, an ssh-config for `ssh -F` (usable while the VM runs), and,
// if the guest still answers, its journal and cloud-init log.
func (m *Machine) saveArtifacts(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	write := func(name, content string, mode os.FileMode) {
		_ = os.WriteFile(filepath.Join(dst, name), []byte(content), mode)
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "console.log")); err == nil {
		write("console.log", string(b), 0o644)
	}
	if m.inst != nil {
		write("qemu-argv.txt", strings.Join(m.inst.Argv, " \\\n  ")+"\n", 0o644)
	}
	write("user-data", string(m.userData), 0o600)
	write("boot-stages.txt", m.Stages.String()+"\n", 0o644)
	if m.inst != nil && m.userKey != nil {
		write("id_ed25519", m.userKey.PrivatePEM, 0o600)
		write("known_hosts", "azl-vmtest "+m.hostKey.PublicLine+"\n", 0o644)
		write("ssh-config", fmt.Sprintf(`# ssh -F %[1]s/ssh-config azl-vmtest   (while the VM runs)
Host azl-vmtest
  HostName 127.0.0.1
  Port %[2]d
  User %[3]s
  IdentityFile %[1]s/id_ed25519
  IdentitiesOnly yes
  HostKeyAlias azl-vmtest
  UserKnownHostsFile %[1]s/known_hosts
  StrictHostKeyChecking yes
`, dst, m.inst.SSHPort, m.cfg.User), 0o644)
	}
	if m.sshClient() != nil && m.Dead() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		names := []string{"journal.txt", "cloud-init.log", "dmesg.txt"}
		res, err := m.RunAll(ctx, "sudo journalctl -b --no-pager -o short-monotonic",
			"sudo cat /var/log/cloud-init.log", "sudo dmesg")
		if err == nil {
			for i, r := range res {
				write(names[i], string(r.Stdout), 0o644)
			}
		}
	}
	return nil
}

// artifactDir is where a test's artifacts go.
func (m *Machine) artifactDir(testName string) string {
	return filepath.Join(m.cfg.Artifacts, sanitize(strings.ReplaceAll(testName, "/", "__")))
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
