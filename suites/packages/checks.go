package packages

import (
	"fmt"
	"sort"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// probeConfig prints the RPM manager's effective main configuration: dnf5's own dump, dnf 4's
// (its Python API: config-manager --dump needs dnf-plugins-core), or tdnf's file (tdnf has no
// dump). Whether dnf 4 is there is asked of Python's importer without importing it: importing
// dnf costs seconds of Python under TCG, and the dump imports it anyway.
var probeConfig = check.Probe{Name: "dnf-config", Cmd: `if command -v dnf5 >/dev/null; then dnf5 --dump-main-config
elif python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("dnf") is None)' 2>/dev/null; then python3 -c 'import dnf; c = dnf.Base().conf; c.read(); print(c.dump())'
elif [ -f /etc/tdnf/tdnf.conf ]; then cat /etc/tdnf/tdnf.conf
else echo '(no RPM package manager: no dnf5, dnf or tdnf)'; fi`}

// Checks are the suite's read-only checks, one per profile key.
var Checks = check.Table{
	check.New("packages.config", probeConfig, "the RPM manager's effective main configuration (`dnf5 --dump-main-config`, dnf 4's `conf.dump()`, `/etc/tdnf/tdnf.conf`): each key the profile lists has its value", MainConfig),
}

// MainConfig checks that every key in want has its value in the dump ("key = value" or
// "key=value" lines; booleans compared as true/false whatever the spelling: 1, True, yes).
func MainConfig(want map[string]string, out string) error {
	got := configDump(out)
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		v, ok := got[k]
		switch {
		case !ok && len(got) == 0:
			v = strings.TrimSpace(out) // no configuration at all: say what the probe found
		case !ok:
			v = "(not set)"
		}
		errs = append(errs, check.Equal(fmt.Sprintf("package manager option %s", k), boolish(want[k]), boolish(v)))
	}
	return check.Errors(errs...)
}

// configDump reads a configuration dump's "key = value" / "key=value" lines ("#" comments
// skipped).
func configDump(out string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && !strings.HasPrefix(strings.TrimSpace(k), "#") {
			got[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return got
}

// boolish spells a boolean option one way (libdnf accepts 1/0, True/False, yes/no, on/off).
func boolish(v string) string {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return "true"
	case "0", "false", "no", "off":
		return "false"
	}
	return v
}
