package harness

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/runstate"
	"github.com/azl-vmtest/azl-vmtest/harness/slots"
)

// Register publishes the machine in the kept-VM registry under entry (vmtest list, ssh, test
// and stop find it there): its login key, pinned host key and how to reach it. image and test
// are for people reading the list.
func (m *Machine) Register(entry *runstate.Entry, image, test string) (runstate.State, error) {
	access, err := m.WriteSSHAccess(entry.Dir)
	if err != nil {
		return runstate.State{}, err
	}
	s := runstate.State{Name: entry.Name, Target: access.Target, KeyFile: access.KeyFile, HostKeyLine: access.HostKeyLine,
		KnownHosts: access.KnownHosts, Arch: m.Arch().Name, Image: image, ConsoleLog: m.ConsoleLog(),
		Test: test, Pid: os.Getpid(), Started: time.Now()}
	if m.profile != nil {
		s.Profile = m.profile.Name
	}
	return s, entry.Write(s)
}

// OpenSSHLine is the OpenSSH command that reaches a kept VM with its pinned host key.
func OpenSSHLine(s runstate.State) string {
	host, port, _ := strings.Cut(strings.TrimPrefix(s.Target, "ssh://"), ":")
	return fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -p %s %s", s.KeyFile, s.KnownHosts, port, host)
}

// HowToReach is the lines that tell a person how to use a kept VM.
func HowToReach(s runstate.State) string {
	return fmt.Sprintf("  vmtest ssh %s -- cat /etc/os-release\n  %s\n  console: %s\n  vmtest test %s ./suites/boot/\n",
		s.Name, OpenSSHLine(s), s.ConsoleLog, s.Name)
}

var heldNameRe = regexp.MustCompile(`[^a-z0-9-]+`)

// heldName is the registry name of a failing test's VM: the test's name, readable and short.
func heldName(test string) string {
	n := strings.Trim(heldNameRe.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(n) > 40 {
		n = strings.TrimRight(n[:40], "-")
	}
	return n
}

// holdUntilStop is how long a held VM waits when nothing bounds it (no go test -timeout).
const holdUntilStop = 24 * time.Hour

// hold keeps a failing test's machine running (VMTEST_KEEP=vm-on-failure): it registers it,
// prints how to reach it, and waits until `vmtest stop` or Ctrl-C (the harness's signal handler
// then stops every VM and exits) or until deadline (a minute before go test's -timeout), then
// returns for the machine to be closed. The test binary waits meanwhile: run the failing test
// alone (-run) to keep its VM. A machine on an existing ssh target is not the harness's to keep.
func (m *Machine) hold(test string, deadline time.Time) {
	if m.inst == nil && m.cloud == nil {
		return
	}
	name := heldName(test)
	entry, err := runstate.Create(name)
	if err != nil {
		name = fmt.Sprintf("%s-%d", name, os.Getpid())
		if entry, err = runstate.Create(name); err != nil {
			fmt.Fprintf(os.Stderr, "azl-vmtest: keeping the VM of %s: %v\n", test, err)
			return
		}
	}
	defer entry.Release()
	s, err := m.Register(entry, m.cfg.Image, test)
	if err != nil {
		fmt.Fprintf(os.Stderr, "azl-vmtest: keeping the VM of %s: %v\n", test, err)
		return
	}
	defer slots.KeptForPerson()()
	if deadline.IsZero() {
		deadline = time.Now().Add(holdUntilStop)
	}
	fmt.Fprintf(os.Stderr, "azl-vmtest: %s failed: its VM is kept as %s (VMTEST_KEEP=vm-on-failure) until `vmtest stop %s`, Ctrl-C, or %s (go test's -timeout; raise it to keep it longer):\n%s",
		test, name, name, deadline.Format(time.TimeOnly), HowToReach(s))
	select {
	case <-time.After(time.Until(deadline)):
		fmt.Fprintf(os.Stderr, "azl-vmtest: %s: kept until go test's -timeout was a minute away: stopping it\n", name)
	case <-m.qemuExited():
		fmt.Fprintf(os.Stderr, "azl-vmtest: %s: QEMU exited\n", name)
	}
}
