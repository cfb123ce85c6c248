// Package cloudinit renders NoCloud user-data and meta-data and writes them as a `cidata` seed ISO
// (go-diskfs). The harness's part creates the test user with a per-run key and installs a per-run
// SSH host key; suites add their own user-data on top without rewriting it.
package cloudinit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// File is a write_files entry.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string `yaml:"permissions,omitempty"`
	Owner       string `yaml:"owner,omitempty"`
}

// KeyPair is an ECDSA P-256 key with its OpenSSH encodings. P-256 is the one key type every
// image accepts: a FIPS policy (crypto-policies' FIPS, the FIPS stand-in) refuses ed25519 for
// host and user keys, and a default policy accepts ECDSA.
type KeyPair struct {
	Private    *ecdsa.PrivateKey
	Signer     ssh.Signer
	PublicLine string // "ecdsa-sha2-nistp256 AAAA... comment"
	PrivatePEM string // OpenSSH private key format
}

// KeyType is the SSH key type of every KeyPair, as cloud-init's ssh_keys and ssh_genkeytypes
// name it; the guest keeps the host key as /etc/ssh/ssh_host_<KeyType>_key.
const KeyType = "ecdsa"

// NewKeyPair makes a fresh key.
func NewKeyPair(comment string) (*KeyPair, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return keyPair(priv, comment)
}

func keyPair(priv *ecdsa.PrivateKey, comment string) (*KeyPair, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if comment != "" {
		pub += " " + comment
	}
	return &KeyPair{Private: priv, Signer: signer, PublicLine: pub, PrivatePEM: string(pem.EncodeToMemory(block))}, nil
}

// ParseKeyPair reads a key NewKeyPair made back from its PrivatePEM (a saved VM state keeps
// the keys its guest trusts).
func ParseKeyPair(privatePEM, comment string) (*KeyPair, error) {
	raw, err := ssh.ParseRawPrivateKey([]byte(privatePEM))
	if err != nil {
		return nil, fmt.Errorf("parsing a saved private key: %w", err)
	}
	priv, ok := raw.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("saved private key is %T, want an ECDSA key", raw)
	}
	k, err := keyPair(priv, comment)
	if err != nil {
		return nil, err
	}
	k.PrivatePEM = privatePEM
	return k, nil
}

// Seed is the content of a NoCloud seed.
type Seed struct {
	InstanceID string
	Hostname   string
	User       string
	UserKey    *KeyPair // authorized for User
	HostKey    *KeyPair // installed as the guest's only SSH host key
	// Suite additions.
	WriteFiles []File
	BootCmd    []string
	RunCmd     []string
	// Extra top-level cloud-config keys (packages, timezone, ...). Keys the harness owns
	// (users, ssh_keys, ...) are refused so a suite cannot silently break access.
	Extra map[string]any
	// NetworkConfig is optional network-config (version 2) YAML.
	NetworkConfig string
	// Raw, if not nil, is the user-data exactly (someone else's: the fields above but
	// InstanceID, Hostname and NetworkConfig are unused).
	Raw []byte
}

// harnessKeys are the cloud-config keys the harness's part sets.
var harnessKeys = []string{"hostname", "fqdn", "users", "ssh_keys", "ssh_deletekeys", "ssh_genkeytypes", "write_files", "bootcmd", "runcmd"}

// UserData renders #cloud-config user-data.
func (s *Seed) UserData() ([]byte, error) {
	if s.Raw != nil {
		return s.Raw, nil
	}
	if s.User == "" || s.UserKey == nil || s.HostKey == nil {
		return nil, errors.New("cloudinit: seed needs a user, a user key and a host key")
	}
	doc := map[string]any{
		"hostname": s.Hostname,
		"users": []map[string]any{{
			"name":                s.User,
			"shell":               "/bin/bash",
			"sudo":                "ALL=(ALL) NOPASSWD:ALL",
			"lock_passwd":         true,
			"ssh_authorized_keys": []string{s.UserKey.PublicLine},
		}},
		// Nothing else: sshd's own settings (PasswordAuthentication, root login) are the image's
		// promises, which the suites check; the harness must not set them.
		"ssh_deletekeys": true,
		// Only the type the harness provides, so nothing is generated (saves seconds under TCG);
		// an empty list fails cloud-init's schema.
		"ssh_genkeytypes": []string{KeyType},
		"ssh_keys": map[string]string{
			KeyType + "_private": s.HostKey.PrivatePEM,
			KeyType + "_public":  s.HostKey.PublicLine,
		},
	}
	if len(s.WriteFiles) > 0 {
		doc["write_files"] = s.WriteFiles
	}
	if len(s.BootCmd) > 0 {
		doc["bootcmd"] = s.BootCmd
	}
	if len(s.RunCmd) > 0 {
		doc["runcmd"] = s.RunCmd
	}
	keys := slices.Sorted(maps.Keys(s.Extra))
	for _, k := range keys {
		for _, h := range harnessKeys {
			if k == h {
				return nil, fmt.Errorf("cloudinit: user-data key %q is set by the harness; use WithWriteFiles/WithRunCmd/WithBootCmd instead of Extra for it", k)
			}
		}
		doc[k] = s.Extra[k]
	}
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MetaData renders meta-data.
func (s *Seed) MetaData() []byte {
	return []byte(fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", s.InstanceID, s.Hostname))
}

// ValidateUserData checks that raw user-data a user supplies is cloud-config that parses, so a
// typo fails before a VM boots rather than as a silent cloud-init error minutes later.
func ValidateUserData(raw []byte) (map[string]any, error) {
	text := string(raw)
	if !strings.HasPrefix(text, "#cloud-config") {
		first, _, _ := strings.Cut(text, "\n")
		return nil, fmt.Errorf("user-data must start with \"#cloud-config\" (got %q)", first)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("user-data is not valid YAML: %w", err)
	}
	return doc, nil
}

// WriteISO writes the seed as an ISO 9660 image with volume ID "cidata" and Rock Ridge names
// (without Rock Ridge, cloud-init sees USER_DAT.;1 and finds nothing).
func (s *Seed) WriteISO(path string) error {
	ud, err := s.UserData()
	if err != nil {
		return err
	}
	if _, err := ValidateUserData(ud); err != nil {
		return fmt.Errorf("cloudinit: rendered user-data is invalid: %w", err)
	}
	if s.NetworkConfig != "" {
		var nc map[string]any
		if err := yaml.Unmarshal([]byte(s.NetworkConfig), &nc); err != nil {
			return fmt.Errorf("cloudinit: network-config is not valid YAML: %w", err)
		}
	}
	files := map[string][]byte{"/user-data": ud, "/meta-data": s.MetaData()}
	if s.NetworkConfig != "" {
		files["/network-config"] = []byte(s.NetworkConfig)
	}
	return writeISO(path, files)
}

func writeISO(path string, files map[string][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fs, err := iso9660.Create(file.New(f, false), 0, 0, 0, "")
	if err != nil {
		return fmt.Errorf("creating seed ISO: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := fs.OpenFile(n, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("seed ISO %s: %w", n, err)
		}
		if _, err := w.Write(files[n]); err != nil {
			return fmt.Errorf("seed ISO %s: %w", n, err)
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: "cidata"}); err != nil {
		return fmt.Errorf("finalizing seed ISO: %w", err)
	}
	return nil
}
