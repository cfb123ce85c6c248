// Package profile holds what an OS release promises, as data: one YAML file per release
// (profiles/*.yaml), matched by /etc/os-release. Suites read expectations from the profile, so
// the same tests judge the stand-in here and real Azure Linux images elsewhere.
package profile

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed profiles/*.yaml
var builtin embed.FS

// Match selects a profile from /etc/os-release fields (all given fields must be equal).
type Match struct {
	ID        string `yaml:"id"`
	VersionID string `yaml:"version_id"`
	VariantID string `yaml:"variant_id,omitempty"`
}

// Boot is what the boot suite checks.
type Boot struct {
	OSID          string `yaml:"os_id"`
	VersionID     string `yaml:"version_id"`
	KernelRelease string `yaml:"kernel_release"` // regular expression for uname -r
	// Console is the serial console device per architecture (console=<dev> on the cmdline).
	Console          map[string]string `yaml:"console"`
	CmdlineRequired  []string          `yaml:"cmdline_required"`
	CmdlineForbidden []string          `yaml:"cmdline_forbidden"`
	BootMode         string            `yaml:"boot_mode"`  // uefi | bios
	Bootloader       string            `yaml:"bootloader"` // grub2 | systemd-boot
	BLSEntries       *bool             `yaml:"bls_entries"`
	RootFS           string            `yaml:"root_fs"`
	SystemState      string            `yaml:"system_state"` // is-system-running
	CloudInitStatus  string            `yaml:"cloud_init_status"`
}

// Network is what the network suite checks.
type Network struct {
	Manager string `yaml:"manager"` // the service managing the primary interface
	// CloudInitNetworkFile is a glob for the file cloud-init renders for the primary NIC.
	CloudInitNetworkFile string `yaml:"cloud_init_network_file"`
	// DHCP: the primary NIC's IPv4 address is dynamic (DHCP), or (false) static.
	DHCP     *bool             `yaml:"dhcp"`
	IPv6     *bool             `yaml:"ipv6"`    // enabled, with a link-local address
	Sysctls  map[string]string `yaml:"sysctls"` // key -> value (sysctl -n)
	Outbound *bool             `yaml:"outbound"`
}

// Firewall is what the firewall suite checks.
type Firewall struct {
	Service     string   `yaml:"service"` // firewalld | iptables
	DefaultZone string   `yaml:"default_zone"`
	ZoneTarget  string   `yaml:"zone_target"`
	Services    []string `yaml:"services"` // allowed in the default zone
	// Ports opened in the default zone besides its services: exactly these (none when empty).
	Ports    []string `yaml:"ports"`
	Backend  string   `yaml:"backend"` // FirewallBackend
	NftTable string   `yaml:"nft_table"`
	// IptablesRules must all appear in `iptables -S` (the iptables policy, 3.0).
	IptablesRules []string `yaml:"iptables_rules"`
	// BlocksUnlistedInbound: a listener on a port the policy does not allow is unreachable.
	BlocksUnlistedInbound *bool `yaml:"blocks_unlisted_inbound"`
}

// Storage is what the storage suite checks (the root filesystem type is boot.root_fs).
type Storage struct {
	Swap         *bool    `yaml:"swap"`          // swap on the OS disk
	Filesystems  []string `yaml:"filesystems"`   // data filesystems that work
	HotplugBuses []string `yaml:"hotplug_buses"` // virtio-blk, nvme
	// NVMeRule is the udev rule file that sets the NVMe I/O timeout for NVMeModel to
	// NVMeTimeoutMS.
	NVMeRule      string `yaml:"nvme_rule"`
	NVMeModel     string `yaml:"nvme_model"`
	NVMeTimeoutMS int    `yaml:"nvme_timeout_ms"`
}

// Logging is what the logging suite checks.
type Logging struct {
	Auditd            *bool `yaml:"auditd"`             // active, enabled 1, watch rules work
	JournalPersistent *bool `yaml:"journal_persistent"` // /var/log/journal/<machine-id>, survives reboot
}

// SELinux is what the selinux suite checks, and what the harness checks after every test.
type SELinux struct {
	Mode   string `yaml:"mode"`   // enforcing | permissive | disabled (getenforce, and the config's mode)
	Policy string `yaml:"policy"` // the loaded policy's name (sestatus)
	MLS    *bool  `yaml:"mls"`    // sestatus "Policy MLS status: enabled"
	// FileContexts: path -> the SELinux type its label must have (ls -Z).
	FileContexts map[string]string `yaml:"file_contexts"`
	// Domains: process name -> the domain (type) it must run in (ps -eZ).
	Domains map[string]string `yaml:"domains"`
	// AllowedDenials: regular expression -> why. A denial record (AVC, USER_AVC, SELINUX_ERR)
	// logged during a test fails it unless one of these matches it.
	AllowedDenials map[string]string `yaml:"allowed_denials"`
}

// Agents is what the agents suite checks.
type Agents struct {
	WAAgentUnit       string `yaml:"waagent_unit"`
	WAAgentMinVersion string `yaml:"waagent_min_version"`
	// WAAgentUnderQEMU is the unit's state under QEMU: "condition-unmet" (enabled, not
	// started, not failed) or "active".
	WAAgentUnderQEMU    string   `yaml:"waagent_under_qemu"`
	CloudInitDatasource string   `yaml:"cloud_init_datasource"` // under QEMU with the harness's seed
	CloudInitLogAllow   []string `yaml:"cloud_init_log_allow"`  // regexps of accepted WARNING/ERROR lines
	// SSHD maps `sshd -T` settings that guard access to the values each may take (any of the
	// list): PasswordAuthentication, PermitRootLogin, PermitEmptyPasswords, ...
	SSHD           map[string][]string `yaml:"sshd"`
	ClientAliveMin int                 `yaml:"client_alive_min"`
	ClientAliveMax int                 `yaml:"client_alive_max"`
}

// Hardening is what the hardening suite checks.
type Hardening struct {
	// KernelSysctls: kernel and BPF hardening sysctls (sysctl -n), key -> value.
	KernelSysctls map[string]string `yaml:"kernel_sysctls"`
	Seccomp       *bool             `yaml:"seccomp"` // the kernel offers seccomp filtering
	// SeccompUnit: a unit whose main process runs under a seccomp filter (its SystemCallFilter=).
	SeccompUnit string `yaml:"seccomp_unit"`
	Lockdown    string `yaml:"lockdown"` // the kernel lockdown mode: none | integrity | confidentiality
	ASLR        *bool  `yaml:"aslr"`     // two runs of one program get a different stack and libc address
	// ELFMinPercent: ELF hardening property (pie, relro_full, nx_stack, stack_protector,
	// fortify) -> the least share, in percent, of the executables and shared objects under /usr
	// that must have it.
	ELFMinPercent map[string]float64 `yaml:"elf_min_percent"`
	// MaxPackages: the most packages a minimal image has installed.
	MaxPackages int `yaml:"max_packages"`
	// ForbiddenPackages: shell patterns of package names the image must not have installed
	// (the graphical stack on a text-and-SSH-only image).
	ForbiddenPackages []string `yaml:"forbidden_packages"`
	// ABILibraries: sonames whose exported symbols the release locks (the Tier-1 ABI); each is
	// compared with the baseline recorded under fixtures/<profile>/abi/.
	ABILibraries []string `yaml:"abi_libraries"`
}

// FIPS is what the FIPS suite checks. A profile that does not promise FIPS mode says so with
// enabled: false and the opposite answers (no fips=1, MD5 works, the default provider), so the
// suite fails on a FIPS image where a non-FIPS one was expected, and the other way round.
type FIPS struct {
	// Enabled: the kernel is in FIPS mode (/proc/sys/crypto/fips_enabled = 1, fips=1 on the
	// command line), or not at all.
	Enabled *bool `yaml:"enabled"`
	// CmdlineRequired: kernel parameters a FIPS boot needs (fips=1; boot=... where /boot is a
	// separate partition), as in boot.cmdline_required.
	CmdlineRequired []string `yaml:"cmdline_required"`
	// KernelSelftests: every algorithm in /proc/crypto passed its self-test.
	KernelSelftests *bool `yaml:"kernel_selftests"`
	// OpenSSLProviders: the names of the active providers in `openssl list -providers`,
	// exactly (FIPS: the FIPS provider and base; otherwise default).
	OpenSSLProviders []string `yaml:"openssl_providers"`
	// RefusesNonApproved: openssl refuses a non-approved digest (MD5) and cipher (ChaCha20)
	// while approved ones (SHA-256, AES) work; false: all four work.
	RefusesNonApproved *bool `yaml:"refuses_non_approved"`
	// SSHApproved: `sshd -T` setting (ciphers, macs, kexalgorithms, hostkeyalgorithms,
	// pubkeyacceptedalgorithms) -> the approved algorithms; sshd may offer only these.
	SSHApproved map[string][]string `yaml:"ssh_approved"`
	// CryptoPolicy: `update-crypto-policies --show`.
	CryptoPolicy string `yaml:"crypto_policy"`
	// PQKex: a post-quantum key exchange `ssh -Q kex` must list (ML-KEM).
	PQKex string `yaml:"pq_kex"`
}

// HyperV is what the hyperv suite checks. The static keys hold on any hypervisor; the
// runtime ones need Hyper-V (Azure) and skip elsewhere, saying so.
type HyperV struct {
	// Drivers: Hyper-V driver -> how the kernel has it: "builtin", "module" (a loadable module
	// modinfo finds) or "present" (either: branches move drivers between the two).
	Drivers map[string]string `yaml:"drivers"`
	// InitramfsDrivers: drivers a boot on Azure needs before the root filesystem: each is
	// built in or in the initramfs.
	InitramfsDrivers []string `yaml:"initramfs_drivers"`
	// KernelConfig: kernel config option -> "y", "m" or "y|m" (the kernel's config file).
	KernelConfig map[string]string `yaml:"kernel_config"`
	// KVPDaemon: the unit of the Hyper-V key-value-pair daemon, active on Hyper-V.
	KVPDaemon string `yaml:"kvp_daemon"`
}

// TPM is what the trustedlaunch suite checks on a VM given a TPM 2.0 (WithTPM).
type TPM struct {
	// VersionMajor: /sys/class/tpm/tpm0/tpm_version_major (2: TPM 2.0; 1.2 is not supported).
	VersionMajor int `yaml:"version_major"`
	// EventLog: the firmware's measured-boot event log reaches the OS
	// (/sys/kernel/security/tpm0/binary_bios_measurements, not empty).
	EventLog *bool `yaml:"event_log"`
	// PCR7Measured: PCR 7 (Secure Boot policy) holds a measurement, not all zeros, as UEFI
	// firmware extends it at every boot.
	PCR7Measured *bool `yaml:"pcr7_measured"`
}

// SecureBoot is what the trustedlaunch suite checks on a VM booted with Secure Boot on
// (WithSecureBoot: UEFI firmware with Microsoft's keys enrolled).
type SecureBoot struct {
	// Enabled: the image's boot chain starts under Secure Boot and the OS sees it on (the
	// SecureBoot EFI variable is 1, SetupMode 0).
	Enabled *bool `yaml:"enabled"`
	// Lockdown: the kernel's lockdown mode under Secure Boot (/sys/kernel/security/lockdown:
	// none, integrity or confidentiality).
	Lockdown string `yaml:"lockdown"`
	// UnsignedModuleRefused: under Secure Boot the kernel refuses a module without a valid
	// signature (the same module loads without Secure Boot, and the signed original loads).
	UnsignedModuleRefused *bool `yaml:"unsigned_module_refused"`
}

// Packages is what the package lifecycle suite checks against a local repository of test
// packages the harness builds (fixtures/packages).
type Packages struct {
	// Managers are the package managers the image ships (apt, dnf (4), dnf5, tdnf): the suite
	// runs the whole lifecycle with each.
	Managers []string `yaml:"managers"`
	// GPGCheck: the manager refuses what is not signed by a key it trusts (apt: the
	// repository's InRelease; RPM managers: each package, gpgcheck), and a package altered
	// after signing or indexing; or it accepts them.
	GPGCheck *bool `yaml:"gpgcheck"`
	// Config is the RPM manager's effective main configuration, key -> value as the manager
	// dumps it (booleans as true/false): e.g. 4.0's 20-azurelinux-defaults.conf.
	Config map[string]string `yaml:"config"`
}

// Profile is one OS release's promises.
type Profile struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Match       Match      `yaml:"match"`
	Boot        Boot       `yaml:"boot"`
	Network     Network    `yaml:"network"`
	Firewall    Firewall   `yaml:"firewall"`
	Storage     Storage    `yaml:"storage"`
	Logging     Logging    `yaml:"logging"`
	Agents      Agents     `yaml:"agents"`
	Hardening   Hardening  `yaml:"hardening"`
	SELinux     SELinux    `yaml:"selinux"`
	FIPS        FIPS       `yaml:"fips"`
	HyperV      HyperV     `yaml:"hyperv"`
	TPM         TPM        `yaml:"tpm"`
	SecureBoot  SecureBoot `yaml:"secureboot"`
	Packages    Packages   `yaml:"packages"`
	// NotPromised names keys (e.g. "boot.bls_entries") this release does not promise, with the
	// reason; a check of such a key skips with that reason.
	NotPromised map[string]string `yaml:"not_promised"`

	Source  string          `yaml:"-"` // where it was loaded from
	present map[string]bool // keys the YAML sets
}

// Names lists the built-in profiles.
func Names() []string {
	ents, _ := builtin.ReadDir("profiles")
	var n []string
	for _, e := range ents {
		n = append(n, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(n)
	return n
}

// Load returns a built-in profile by name, or reads a profile file when name is a path.
func Load(name string) (*Profile, error) {
	var data []byte
	var src string
	var err error
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".yaml") {
		src = name
		data, err = os.ReadFile(name)
	} else {
		src = "builtin:" + name
		data, err = builtin.ReadFile(path.Join("profiles", name+".yaml"))
		if err != nil {
			return nil, fmt.Errorf("no profile %q: use one of %s, or a path to a profile file", name, strings.Join(Names(), ", "))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", src, err)
	}
	return Parse(data, src)
}

// Parse decodes a profile strictly: an unknown key is an error (a typo must not turn a check
// into a silent skip). A profile with `extends: <built-in profile>` is that profile with its
// own name, match and keys on top (see extend).
func Parse(data []byte, src string) (*Profile, error) {
	data, err := extend(data, src, 0)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("invalid profile %s: %w", src, err)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("invalid profile %s: no name", src)
	}
	if p.Match.ID == "" {
		return nil, fmt.Errorf("invalid profile %s: match.id is required", src)
	}
	for k := range p.NotPromised {
		if !IsKey(k) {
			return nil, fmt.Errorf("invalid profile %s: not_promised names unknown key %q", src, k)
		}
	}
	// Complete: every key is promised (present in the YAML, an empty list included) or listed
	// under not_promised with a reason, never both; a missing key would silently check nothing.
	present, err := presentKeys(data)
	if err != nil {
		return nil, fmt.Errorf("invalid profile %s: %w", src, err)
	}
	var missing, both []string
	for _, k := range Keys() {
		_, unpromised := p.NotPromised[k]
		switch {
		case !present[k] && !unpromised:
			missing = append(missing, k)
		case present[k] && unpromised:
			both = append(both, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("invalid profile %s: no expectation for %s: give each a value, or list it under not_promised with the reason", src, strings.Join(missing, ", "))
	}
	if len(both) > 0 {
		return nil, fmt.Errorf("invalid profile %s: %s both promised and listed under not_promised", src, strings.Join(both, ", "))
	}
	p.Source = src
	p.present = present
	// A key set to nothing ("ipv6:" or "ipv6: null") promises neither yes nor no.
	for _, k := range Keys() {
		if f, _ := p.field(k); present[k] && f.Kind() == reflect.Pointer && f.IsNil() {
			return nil, fmt.Errorf("invalid profile %s: %s has no value: give it one, or list it under not_promised with the reason", src, k)
		}
	}
	return &p, nil
}

// extend resolves `extends: <built-in profile>`: the result is the base profile with the
// derived one's name, description and match, and each of its keys set over the base's (a
// map-valued key is replaced whole, not merged). A key the derived profile promises leaves the
// base's not_promised, and one it lists under not_promised leaves the base's promises; the
// rest of not_promised is the union. A profile without extends is returned as it is.
func extend(data []byte, src string, depth int) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("invalid profile %s: %w", src, err)
	}
	baseName, ok := doc["extends"]
	if !ok {
		return data, nil
	}
	name, ok := baseName.(string)
	if !ok || name == "" || strings.ContainsAny(name, "/.") {
		return nil, fmt.Errorf("invalid profile %s: extends must name a built-in profile (%s)", src, strings.Join(Names(), ", "))
	}
	if depth > 4 {
		return nil, fmt.Errorf("invalid profile %s: extends goes more than 4 profiles deep (a cycle?)", src)
	}
	baseData, err := builtin.ReadFile(path.Join("profiles", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("invalid profile %s: extends %q, which is no built-in profile (%s)", src, name, strings.Join(Names(), ", "))
	}
	if baseData, err = extend(baseData, "builtin:"+name, depth+1); err != nil {
		return nil, err
	}
	var base map[string]any
	if err := yaml.Unmarshal(baseData, &base); err != nil {
		return nil, fmt.Errorf("invalid profile builtin:%s: %w", name, err)
	}
	baseNP, _ := base["not_promised"].(map[string]any)
	if baseNP == nil {
		baseNP = map[string]any{}
	}
	derivedNP, _ := doc["not_promised"].(map[string]any)
	for sec, v := range doc {
		switch sec {
		case "extends", "not_promised":
			continue
		case "name", "description", "match":
			base[sec] = v
			continue
		}
		dm, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("invalid profile %s: %s must be a mapping of keys", src, sec)
		}
		bm, _ := base[sec].(map[string]any)
		if bm == nil {
			bm = map[string]any{}
			base[sec] = bm
		}
		for k, x := range dm {
			bm[k] = x
			delete(baseNP, sec+"."+k)
		}
	}
	for k, why := range derivedNP {
		sec, field, _ := strings.Cut(k, ".")
		if bm, ok := base[sec].(map[string]any); ok {
			delete(bm, field)
		}
		baseNP[k] = why
	}
	base["not_promised"] = baseNP
	return yaml.Marshal(base)
}

// presentKeys lists the "section.field" keys the YAML document sets (whatever the value).
func presentKeys(data []byte) (map[string]bool, error) {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for sec, n := range doc {
		if n.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			keys[sec+"."+n.Content[i].Value] = true
		}
	}
	return keys, nil
}

// Declares reports whether the profile sets key, whatever the value (an empty list is a
// promise of nothing).
func (p *Profile) Declares(key string) bool { return p.present[key] }

// ParseOSRelease reads os-release text into a map (quotes removed).
func ParseOSRelease(text string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		m[k] = strings.Trim(v, `"'`)
	}
	return m
}

// Detect picks the built-in profile whose match fits os-release. The most specific match wins
// (a variant_id match beats one without).
func Detect(osRelease string) (*Profile, error) {
	osr := ParseOSRelease(osRelease)
	var best *Profile
	bestScore := -1
	for _, n := range Names() {
		p, err := Load(n)
		if err != nil {
			return nil, err
		}
		m := p.Match
		if m.ID != osr["ID"] || (m.VersionID != "" && m.VersionID != osr["VERSION_ID"]) ||
			(m.VariantID != "" && m.VariantID != osr["VARIANT_ID"]) {
			continue
		}
		score := 0
		if m.VersionID != "" {
			score++
		}
		if m.VariantID != "" {
			score += 2
		}
		if score > bestScore {
			best, bestScore = p, score
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no profile matches this guest (ID=%q VERSION_ID=%q VARIANT_ID=%q): set VMTEST_PROFILE to one of %s or to a profile file",
			osr["ID"], osr["VERSION_ID"], osr["VARIANT_ID"], strings.Join(Names(), ", "))
	}
	return best, nil
}

// Unpromised returns the reason key is not promised, if the profile says so.
func (p *Profile) Unpromised(key string) (string, bool) {
	r, ok := p.NotPromised[key]
	return r, ok
}
