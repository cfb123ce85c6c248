// Package agents verifies the Azure agents: waagent (version, unit, its state under QEMU),
// cloud-init (done, no errors, the datasource, a clean log, the harness's user-data applied)
// and sshd's effective configuration.
package agents

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// Probes: the commands whose output the checks read.
var (
	probeWAAgentVersion = check.Probe{Name: "waagent-version", Cmd: "waagent --version 2>&1"}
	probeWAAgentUnit    = check.Probe{Name: "waagent-unit", Cmd: "systemctl is-enabled {agents.waagent_unit}; systemctl show -p Id,LoadState,ActiveState,SubState,Result,ConditionResult {agents.waagent_unit}"}
	probeCloudInit      = check.Probe{Name: "cloud-init-status", Cmd: "cloud-init status --long; echo exit=$?"}
	probeCloudInitLog   = check.Probe{Name: "cloud-init-log", Cmd: `sudo grep -E '\[(WARNING|ERROR|CRITICAL)\]' /var/log/cloud-init.log; true`}
	probeSSHD           = check.Probe{Name: "sshd-T", Cmd: "sudo sshd -T"}
)

// CmdHostKeys lists the guest's SSH host key files, then prints them (TestUserDataApplied).
const CmdHostKeys = "sudo sh -c 'ls -1 /etc/ssh/ssh_host_*_key.pub; cat /etc/ssh/ssh_host_*_key.pub'"

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("agents.waagent_min_version", probeWAAgentVersion, "`waagent --version` at least this", WAAgentVersion),
	check.New("agents.waagent_unit", probeWAAgentUnit, "the agent's unit is loaded (its file present and sound) and enabled", WAAgentUnit),
	check.New("agents.waagent_under_qemu", probeWAAgentUnit, "the agent's state off Azure: `condition-unmet` (not started, not failed) or `active`", WAAgentUnderQEMU),
	check.New("agents.cloud_init_datasource", probeCloudInit, "cloud-init done, no errors, from this datasource", CloudInitStatus),
	check.New("agents.cloud_init_log_allow", probeCloudInitLog, "no WARNING/ERROR line in `cloud-init.log` outside this allow-list", CloudInitLog),
	check.New("agents.sshd", probeSSHD, "each `sshd -T` setting that guards access takes one of its accepted values", SSHD),
	check.New("agents.client_alive_min", probeSSHD, "`sshd -T` ClientAliveInterval at least this", ClientAliveMin),
	check.New("agents.client_alive_max", probeSSHD, "`sshd -T` ClientAliveInterval at most this", ClientAliveMax),
}

var agentVersion = regexp.MustCompile(`WALinuxAgent-([0-9][0-9.]*)`)

// WAAgentVersion checks `waagent --version` reports at least min.
func WAAgentVersion(min, out string) error {
	m := agentVersion.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("waagent --version: expected \"WALinuxAgent-<version>\" >= %s, got %q", min, strings.TrimSpace(out))
	}
	got := strings.TrimRight(m[1], ".")
	if compareVersions(got, min) < 0 {
		return fmt.Errorf("waagent version: expected >= %s, got %s", min, got)
	}
	return nil
}

// compareVersions compares dotted numeric versions.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// WAAgentUnit checks the unit is loaded (a removed or broken unit file shows "not-found",
// "bad-setting" or "masked") and enabled.
func WAAgentUnit(unit, out string) error {
	enabled, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return check.Errors(
		check.Equal(unit+" LoadState", "loaded", check.Field(out, "LoadState")),
		check.Equal(unit+" is-enabled", "enabled", strings.TrimSpace(enabled)),
	)
}

// WAAgentUnderQEMU checks the unit's state off Azure: "condition-unmet" (not started because
// its condition is false, not failed) or "active".
func WAAgentUnderQEMU(want, out string) error {
	state := func(k string) string { return check.Field(out, k) }
	unit := state("Id")
	switch want {
	case "condition-unmet":
		got := fmt.Sprintf("ActiveState=%s ConditionResult=%s Result=%s", state("ActiveState"), state("ConditionResult"), state("Result"))
		if state("ActiveState") != "inactive" || state("ConditionResult") != "no" || state("Result") != "success" {
			return fmt.Errorf("%s under QEMU: expected \"ActiveState=inactive ConditionResult=no Result=success\" (condition unmet, not failed), got %q", unit, got)
		}
		return nil
	case "active":
		return check.Equal(unit+" ActiveState", "active", state("ActiveState"))
	}
	return fmt.Errorf("profile: agents.waagent_under_qemu %q: expected condition-unmet or active", want)
}

// CloudInitStatus checks `cloud-init status --long`: done, no errors, exit 0, and the datasource.
func CloudInitStatus(datasource, out string) error {
	errs := []error{check.CloudInit("done", out)}
	if datasource != "" && !strings.Contains(out, "DataSource"+datasource) {
		detail := check.Field(out, "detail")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "DataSource") {
				detail = strings.TrimSpace(l)
			}
		}
		errs = append(errs, fmt.Errorf("cloud-init datasource: expected DataSource%s, got %q", datasource, detail))
	}
	return check.Errors(errs...)
}

// CloudInitLog checks the WARNING/ERROR lines of cloud-init.log against the allow-list.
func CloudInitLog(allow []string, lines string) error {
	var res []*regexp.Regexp
	for _, a := range allow {
		re, err := regexp.Compile(a)
		if err != nil {
			return fmt.Errorf("profile: agents.cloud_init_log_allow %q: %v", a, err)
		}
		res = append(res, re)
	}
	var bad []string
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		allowed := false
		for _, re := range res {
			if re.MatchString(l) {
				allowed = true
				break
			}
		}
		if !allowed {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("/var/log/cloud-init.log: expected no WARNING/ERROR lines outside the profile's allow-list, got %d:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	return nil
}

// AuthorizedKeys checks that the test user's authorized_keys holds exactly the harness's key:
// the login already proved the key is there; an image that ships or adds another key (a build
// key, a vendor's) is what must fail.
func AuthorizedKeys(user, harnessKey, content string) error {
	want := strings.Join(strings.Fields(harnessKey)[:2], " ")
	var keys []string
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		keys = append(keys, l)
	}
	for _, k := range keys {
		if !strings.Contains(k, want) {
			return fmt.Errorf("authorized_keys of %s: expected only the harness's key, got another: %q", user, k)
		}
	}
	if len(keys) != 1 {
		return fmt.Errorf("authorized_keys of %s: expected the harness's key once, got %d keys", user, len(keys))
	}
	return nil
}

// HostKey checks the guest's only SSH host key is the injected one, in the file sshd keeps a
// key of its type in.
func HostKey(injected, out string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var files []string
	var key string
	for _, l := range lines {
		if strings.HasPrefix(l, "/etc/ssh/") {
			files = append(files, l)
		} else if key == "" {
			key = l
		}
	}
	want := strings.Join(strings.Fields(injected)[:2], " ")
	got := ""
	if f := strings.Fields(key); len(f) >= 2 {
		got = f[0] + " " + f[1]
	}
	file := hostKeyFile(want)
	return check.Errors(
		check.Equal("SSH host key "+file, want, got),
		check.Set("SSH host key files", []string{file}, strings.Join(files, " ")),
	)
}

// hostKeyFile is where sshd keeps the public host key of a key's type
// ("ecdsa-sha2-nistp256 AAAA..." is in ssh_host_ecdsa_key.pub).
func hostKeyFile(key string) string {
	typ, _, _ := strings.Cut(key, " ")
	name := strings.TrimPrefix(typ, "ssh-")
	if strings.HasPrefix(typ, "ecdsa-") {
		name = "ecdsa"
	}
	return "/etc/ssh/ssh_host_" + name + "_key.pub"
}

// sshdConfig reads `sshd -T` (lower-case keys).
func sshdConfig(out string) map[string]string {
	cfg := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			cfg[strings.ToLower(f[0])] = f[1]
		}
	}
	return cfg
}

// SSHD checks `sshd -T`: each setting the profile lists takes one of its accepted values (a
// setting sshd does not print fails too).
func SSHD(want map[string][]string, out string) error {
	cfg := sshdConfig(out)
	keys := slices.Sorted(maps.Keys(want))
	var errs []error
	for _, k := range keys {
		got, ok := cfg[strings.ToLower(k)]
		if !ok {
			got = "(not printed)"
		}
		if !slices.Contains(want[k], got) {
			errs = append(errs, fmt.Errorf("sshd -T %s: expected %s, got %q", strings.ToLower(k), strings.Join(want[k], " or "), got))
		}
	}
	return check.Errors(errs...)
}

// ClientAliveMin checks ClientAliveInterval is at least min seconds.
func ClientAliveMin(min int, out string) error {
	return check.IntAtLeast("sshd -T clientaliveinterval", min, sshdConfig(out)["clientaliveinterval"])
}

// ClientAliveMax checks ClientAliveInterval is at most max seconds.
func ClientAliveMax(max int, out string) error {
	return check.IntAtMost("sshd -T clientaliveinterval", max, sshdConfig(out)["clientaliveinterval"])
}
