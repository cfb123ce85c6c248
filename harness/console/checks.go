// Package console records a guest's serial console and checks it against a data table of signs
// that something went wrong (kernel panic, Oops, lockups, emergency shell, ...).
package console

import (
	"fmt"
	"regexp"
	"strings"
)

// Check is one sign of trouble on a console or in a kernel log.
type Check struct {
	Name    string
	Pattern *regexp.Regexp
	// Fatal checks mean the guest will not come back: a boot or command waiting on it fails at
	// once instead of timing out.
	Fatal bool
	// Hint says what the match usually means and what to do.
	Hint string
}

// Checks is the table run after every test (and, for the Fatal ones, live during boot).
var Checks = []Check{
	{Name: "kernel panic", Pattern: regexp.MustCompile(`Kernel panic - not syncing`), Fatal: true},
	{Name: "oops", Pattern: regexp.MustCompile(`\bOops\b|\bOops:`)},
	{Name: "kernel BUG", Pattern: regexp.MustCompile(`\bBUG: `)},
	{Name: "kernel warning", Pattern: regexp.MustCompile(`WARNING: CPU: \d+ PID: \d+`)},
	{Name: "call trace", Pattern: regexp.MustCompile(`Call Trace:`)},
	{Name: "soft lockup", Pattern: regexp.MustCompile(`soft lockup - CPU#\d+ stuck`)},
	{Name: "hard lockup", Pattern: regexp.MustCompile(`(?i)detected hard LOCKUP`)},
	{Name: "hung task", Pattern: regexp.MustCompile(`blocked for more than \d+ seconds`)},
	{Name: "segfault", Pattern: regexp.MustCompile(`segfault at [0-9a-f]+ ip `)},
	{Name: "emergency shell", Pattern: regexp.MustCompile(`You are in emergency mode|Give root password for maintenance|Dropping to a shell!`), Fatal: true,
		Hint: "the guest could not reach its default target (root filesystem, fstab or a failed required unit)"},
	{Name: "root filesystem not found", Pattern: regexp.MustCompile(`Gave up waiting for root (file system )?device|Failed to mount \S+ as root|VFS: Unable to mount root fs|^\(initramfs\) |dracut-emergency|dracut:/# |Warning: /dev/\S+ does not exist`), Fatal: true,
		Hint: "the initramfs could not find or mount the root filesystem: a truncated or corrupt image, a missing storage driver, or a wrong root= argument"},
	{Name: "systemd ordering cycle", Pattern: regexp.MustCompile(`Found ordering cycle|to break ordering cycle`)},
	{Name: "no bootable device", Pattern: regexp.MustCompile(`No bootable option or device was found|No bootable device|Boot Failed\.|UEFI Interactive Shell`), Fatal: true,
		Hint: "the firmware found nothing to boot: is the image bootable with UEFI, and built for this architecture (VMTEST_ARCH)?"},
	{Name: "refused by Secure Boot", Pattern: regexp.MustCompile(`failed to load Boot\S+ .*: Access Denied|Verification failed: \(0x1A\) Security Violation|error: bad shim signature`), Fatal: true,
		Hint: "Secure Boot refused a boot loader or kernel that is not signed for the firmware's keys: is the image's chain signed (shim signed by Microsoft, then a GRUB and kernel shim trusts)? The firmware checks only with Secure Boot on (WithSecureBoot)"},
	{Name: "boot loader rescue", Pattern: regexp.MustCompile(`grub rescue>|^\s*error: (no such device|file '[^']*' not found)`), Fatal: true,
		Hint: "GRUB could not find its configuration, kernel or root filesystem"},
}

// Line is one console or log line.
type Line struct {
	N    int    // line number, from 1
	Text string // without control characters
}

// Hit is a line that matched a check.
type Hit struct {
	Check Check
	Line  Line
}

func (h Hit) String() string {
	return fmt.Sprintf("[%s] line %d: %s", h.Check.Name, h.Line.N, h.Line.Text)
}

// Scan runs checks over lines; checks named in allow are skipped (a test that crashes the guest
// on purpose allows "kernel panic").
func Scan(lines []Line, checks []Check, allow ...string) []Hit {
	var hits []Hit
	for _, l := range lines {
		for _, c := range checks {
			if contains(allow, c.Name) {
				continue
			}
			if c.Pattern.MatchString(l.Text) {
				hits = append(hits, Hit{Check: c, Line: l})
			}
		}
	}
	return hits
}

// Report formats hits for a test failure, at most max of them.
func Report(source string, hits []Hit, max int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %d line(s) match console checks:\n", source, len(hits))
	for i, h := range hits {
		if i == max {
			fmt.Fprintf(&sb, "  ... %d more\n", len(hits)-max)
			break
		}
		fmt.Fprintf(&sb, "  %s\n", h)
	}
	return sb.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SplitLines turns text (a kernel log, a file) into Lines.
func SplitLines(text string) []Line {
	var out []Line
	for i, t := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if t != "" || i > 0 {
			out = append(out, Line{N: i + 1, Text: clean(t)})
		}
	}
	return out
}
