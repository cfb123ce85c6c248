package packages

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fx "github.com/azl-vmtest/azl-vmtest/fixtures/packages"
	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/check"
)

// repoPort is where the guest reaches the host's repositories (harness.HostServiceIP).
const repoPort = 8080

var (
	vm      *harness.Shared
	trusted *fx.Key // the key the guest is given
	repos   string  // host folder served to the guest: one repository per sub-folder
)

func TestMain(m *testing.M) {
	// The harness's scratch folder, not a plain temporary one: a Ctrl-C, a SIGTERM or a killed
	// run must not leave the repositories behind.
	dir, removeDir, err := harness.ScratchDir("repos")
	if err == nil {
		repos = dir
		start := time.Now()
		var n int
		if n, err = buildRepos(context.Background(), dir); err == nil {
			fmt.Fprintf(os.Stderr, "package fixtures: %d packages and 8 repositories built in %.1fs\n", n, time.Since(start).Seconds())
		}
	}
	var addr string
	var srv *http.Server
	if err == nil {
		var l net.Listener
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			addr = l.Addr().String()
			srv = &http.Server{Handler: http.FileServer(http.Dir(dir))}
			go func() { _ = srv.Serve(l) }()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "package fixtures:", err)
		if removeDir != nil {
			removeDir()
		}
		os.Exit(1)
	}
	vm = harness.NewShared(harness.WithHostService(repoPort, addr))
	code := vm.Main(m)
	_ = srv.Close()
	removeDir()
	os.Exit(code)
}

// buildRepos builds the packages for the VM's architecture and, for each format (deb, rpm),
// four repositories of them under <format>/: trusted (packages and index signed with the key
// the guest gets), unsigned, untrusted (signed with another key) and altered (vmtest-hello 1.1
// changed after signing: a deb after indexing, as apt checks the index's hashes; an RPM before
// indexing, so rpm's own signature and digest checks must catch it). The trusted RPM repository
// also holds the install-only vmtest-kernel's versions. It returns how many packages it built.
func buildRepos(ctx context.Context, dir string) (built int, err error) {
	cfg, err := harness.ConfigFromEnv()
	if err != nil {
		return 0, err
	}
	if trusted, err = fx.NewKey("azl-vmtest trusted"); err != nil {
		return 0, err
	}
	other, err := fx.NewKey("azl-vmtest untrusted")
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "trusted.asc"), trusted.Public, 0o644); err != nil {
		return 0, err
	}
	keys := map[string]*fx.Key{"trusted": trusted, "unsigned": nil, "untrusted": other, "altered": trusted}
	for _, f := range []fx.Format{fx.Deb, fx.RPM} {
		for name, key := range keys {
			pool := filepath.Join(dir, "pool", string(f), name)
			if err := os.MkdirAll(pool, 0o755); err != nil {
				return 0, err
			}
			var specs []fx.Spec
			for _, v := range fx.Versions {
				for _, n := range []string{fx.Hello, fx.HelloData} {
					specs = append(specs, fx.Spec{Name: n, Version: v})
				}
			}
			if f == fx.RPM && name == "trusted" {
				for _, v := range fx.KernelVersions {
					specs = append(specs, fx.Spec{Name: fx.Kernel, Version: v})
				}
			}
			var pkgs []string
			for _, s := range specs {
				s.Format, s.Arch = f, cfg.Arch.Name
				if f == fx.RPM {
					s.Sign = key // debs are never signed themselves: apt checks the repository's signature
				}
				p, err := fx.Build(pool, s)
				if err != nil {
					return 0, err
				}
				pkgs = append(pkgs, p)
			}
			built += len(pkgs)
			victim := filepath.Join(pool, fx.Spec{Name: fx.Hello, Version: fx.Versions[1], Format: f, Arch: cfg.Arch.Name}.FileName())
			repo := filepath.Join(dir, string(f), name)
			if f == fx.RPM && name == "altered" {
				if err := flipLastByte(victim); err != nil {
					return 0, err
				}
			}
			if f == fx.Deb {
				err = fx.AptRepo(repo, pkgs, key)
			} else {
				err = fx.RPMRepo(ctx, repo, pkgs, key)
			}
			if err != nil {
				return 0, err
			}
			if f == fx.Deb && name == "altered" {
				if err := flipLastByte(filepath.Join(repo, filepath.Base(victim))); err != nil {
					return 0, err
				}
			}
		}
	}
	return built, nil
}

// flipLastByte changes a package's last byte (in its compressed payload).
func flipLastByte(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b[len(b)-1] ^= 0xff
	return os.WriteFile(path, b, 0o644)
}

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

// eachManager runs f once per manager the profile says the image ships (packages.managers), as
// a subtest named after it; a manager without a driver skips, naming it.
func eachManager(t *testing.T, m *harness.Machine, f func(t *testing.T, d Driver)) {
	eachManagerUnless(t, m, nil, f)
}

// eachManagerUnless is eachManager where a manager for which notFor gives a reason skips with
// it before anything runs in the guest (a manager's scrub and purge take seconds under TCG).
func eachManagerUnless(t *testing.T, m *harness.Machine, notFor func(d Driver) string, f func(t *testing.T, d Driver)) {
	m.Require(t, harness.PowerHostNetwork) // the repositories are served from the host
	for _, name := range harness.Want[[]string](t, m, "packages.managers") {
		t.Run(name, func(t *testing.T) {
			d, why := For(name)
			if d == nil {
				t.Skip(why)
			}
			if notFor != nil {
				if why := notFor(d); why != "" {
					t.Skip(why)
				}
			}
			// Start from nothing the previous manager's run left, and leave nothing (the
			// packages of both formats install the same paths).
			scrub := "sudo rm -rf " + filepath.Dir(fx.Trace) + " " + fx.Config + "*"
			m.MustRun(t, scrub)
			t.Cleanup(func() {
				m.Output(t, d.Purge(fx.Hello, fx.HelloData))
				m.Output(t, scrub)
			})
			f(t, d)
		})
	}
}

// useRepo gives the guest the trusted key and makes the driver's repository name the only one.
func useRepo(t *testing.T, m *harness.Machine, d Driver, name string, repoGPGCheck bool) {
	t.Helper()
	const key = "/etc/vmtest-repo-key.asc"
	require.NoError(t, m.CopyTo(t.Context(), filepath.Join(repos, "trusted.asc"), "/tmp/vmtest-repo-key.asc", "0644"))
	m.MustRun(t, "sudo install -m 0644 /tmp/vmtest-repo-key.asc "+key)
	m.MustRun(t, d.UseRepo(fmt.Sprintf("http://%s:%d/%s/%s/", harness.HostServiceIP, repoPort, d.Format(), name), key, repoGPGCheck))
}

// run runs a step and returns its output and exit code.
func run(t *testing.T, m *harness.Machine, cmd string) (string, int) {
	t.Helper()
	out, code := m.Output(t, cmd)
	t.Logf("$ %s\n%s(exit %d)", cmd, check.LastLines(out, 8)+"\n", code)
	return out, code
}

// TestLifecycle, with each manager: install 1.0 (with its dependency), verified clean, its unit
// started by its scriptlet; 1.1 offered; upgrade keeping a locally edited configuration file
// (the package's written beside it); downgrade; history undo where the manager keeps history;
// remove (program and unit gone, the edited configuration kept per the manager's rules) and
// purge (configuration gone); the database clean.
func TestLifecycle(t *testing.T) {
	harness.Long(t, "each manager installs, upgrades, downgrades, undoes and removes the fixture packages")
	m := vm.Machine(t)
	eachManager(t, m, func(t *testing.T, d Driver) {
		useRepo(t, m, d, "trusted", false)
		installed := func(t *testing.T, pkg, want string) {
			t.Helper()
			out, _ := m.Output(t, d.Installed(pkg))
			require.NoError(t, InstalledVersion(pkg, want, out))
		}
		cat := func(path string) string { out, _ := m.Output(t, "sudo cat "+path+" 2>&1"); return out }

		out, code := run(t, m, d.Refresh())
		require.Equal(t, 0, code, "refreshing the signed repository: %s", out)
		out, code = run(t, m, d.Install("1.0", fx.Hello, fx.HelloData))
		require.Equal(t, 0, code, "install 1.0: %s", out)
		installed(t, fx.Hello, "1.0")
		installed(t, fx.HelloData, "1.0")
		out, code = run(t, m, d.Verify(fx.Hello))
		require.NoError(t, Clean("verify "+fx.Hello+" 1.0", code, out))
		assert.Equal(t, "vmtest-hello 1.0 vmtest-hello-data 1.0", strings.TrimSpace(m.MustRun(t, fx.Program)))
		state, _ := m.Output(t, "systemctl is-active "+fx.Unit+"; systemctl is-enabled "+fx.Unit)
		assert.Equal(t, "active\nenabled", strings.TrimSpace(state), "%s after install (its postinstall enables and starts it)", fx.Unit)
		assert.Contains(t, cat(fx.Trace), "postinstall 1.0")

		out, code = run(t, m, d.CheckUpdate())
		require.NoError(t, Upgradable(fx.Hello, "1.1", out))
		require.Equal(t, d.UpdatesExit(), code, "exit code of %s's check for updates when there are some", d.Name())

		m.MustRun(t, "echo 'greeting=edited locally' | sudo tee -a "+fx.Config)
		out, code = run(t, m, d.Upgrade(fx.Hello, fx.HelloData))
		require.Equal(t, 0, code, "upgrade: %s", out)
		installed(t, fx.Hello, "1.1")
		assert.Contains(t, cat(fx.Config), "edited locally", "the locally edited %s is kept on upgrade", fx.Config)
		assert.Contains(t, cat(d.NewConfig(fx.Config)), "vmtest-hello 1.1", "the package's new %s is written beside it", fx.Config)
		assert.Equal(t, "vmtest-hello 1.1 vmtest-hello-data 1.1", strings.TrimSpace(m.MustRun(t, fx.Program)))

		out, code = run(t, m, d.Downgrade("1.0", fx.Hello, fx.HelloData))
		require.Equal(t, 0, code, "downgrade: %s", out)
		installed(t, fx.Hello, "1.0")
		installed(t, fx.HelloData, "1.0")
		current := "1.0"

		t.Run("history undo", func(t *testing.T) {
			cmd := d.HistoryUndo()
			if cmd == "" {
				t.Skipf("%s keeps no transaction history to undo", d.Name())
			}
			out, code := run(t, m, cmd)
			require.Equal(t, 0, code, "undo of the downgrade: %s", out)
			installed(t, fx.Hello, "1.1")
			installed(t, fx.HelloData, "1.1")
			current = "1.1"
		})

		out, code = run(t, m, d.Remove(fx.Hello))
		require.Equal(t, 0, code, "remove: %s", out)
		installed(t, fx.Hello, "")
		_, code = m.Output(t, "test -e "+fx.Program+" || test -e "+fx.UnitPath)
		assert.NotEqual(t, 0, code, "%s and %s must be gone after remove", fx.Program, fx.UnitPath)
		state, _ = m.Output(t, "systemctl is-active "+fx.Unit)
		assert.NotEqual(t, "active", strings.TrimSpace(state), "%s after remove (its preremove stops it)", fx.Unit)
		assert.Regexp(t, regexp.MustCompile(`(?m)^preremove `+regexp.QuoteMeta(current)+` (remove|0)$`), cat(fx.Trace), "the preremove scriptlet of the removed version ran for a removal")
		assert.Contains(t, cat(d.RemovedConfig(fx.Config)), "edited locally", "after remove the edited configuration is kept as %s", d.RemovedConfig(fx.Config))
		out, code = run(t, m, d.Purge(fx.Hello, fx.HelloData))
		require.Equal(t, 0, code, "purge: %s", out)
		installed(t, fx.HelloData, "")
		_, code = m.Output(t, "test -e "+fx.Config)
		assert.NotEqual(t, 0, code, "%s must be gone after purge", fx.Config)
		out, code = run(t, m, d.Audit())
		require.NoError(t, Clean("package database audit", code, out))
	})
}

// TestInstallOnlyLimit, with each RPM manager: an install-only package (vmtest-kernel provides
// installonlypkg(vm), in dnf's default installonlypkgs) installs beside its older versions
// instead of replacing them, and the manager keeps the newest installonly_limit of them (the
// image's effective value, as the packages.config row reads it), removing the oldest: installing
// 1.0 to 4.0 one after the other leaves 2.0, 3.0 and 4.0 under a limit of 3.
func TestInstallOnlyLimit(t *testing.T) {
	harness.Long(t, "each RPM manager installs four kernels in turn")
	m := vm.Machine(t)
	notFor := func(d Driver) string {
		switch {
		case d.Format() != fx.RPM:
			return d.Name() + " has no install-only packages (Debian keeps kernels side by side by their names)"
		case d.Name() == "tdnf":
			return "tdnf treats as install-only only the names in tdnf.conf's installonlypkgs (vmware/tdnf client/goal.c): a test package cannot join them without changing the image's configuration"
		}
		return ""
	}
	eachManagerUnless(t, m, notFor, func(t *testing.T, d Driver) {
		out, _ := m.Output(t, probeConfig.Cmd)
		limit, err := InstallOnlyLimit(out)
		require.NoError(t, err)
		useRepo(t, m, d, "trusted", false)
		t.Cleanup(func() { m.Output(t, "sudo rpm -e --allmatches "+fx.Kernel+" 2>&1") })
		out, code := run(t, m, d.Refresh())
		require.Equal(t, 0, code, "refreshing the signed repository: %s", out)
		for _, v := range fx.KernelVersions {
			out, code := run(t, m, d.Install(v, fx.Kernel))
			require.Equal(t, 0, code, "install %s %s: %s", fx.Kernel, v, out)
		}
		out, _ = m.Output(t, d.Installed(fx.Kernel))
		require.NoError(t, InstallOnlyKept(fx.Kernel, fx.KernelVersions, limit, out))
	})
}

// TestRefusals, with each manager: with gpgcheck promised, an unsigned repository, one signed
// by a key the guest does not trust, and a package altered after signing are each refused with
// the manager's own error, and nothing is installed (gpgcheck off: each is accepted). Where the
// repository asks for repo_gpgcheck, metadata signed by an untrusted key is refused whatever
// gpgcheck says.
func TestRefusals(t *testing.T) {
	harness.Long(t, "each manager is offered every bad package and repository")
	m := vm.Machine(t)
	eachManager(t, m, func(t *testing.T, d Driver) {
		gpgcheck := harness.Want[bool](t, m, "packages.gpgcheck")
		for _, r := range d.Refusals() {
			t.Run(r.Name(), func(t *testing.T) {
				want := gpgcheck || r.RepoGPGCheck
				useRepo(t, m, d, r.Repo, r.RepoGPGCheck)
				t.Cleanup(func() { m.Output(t, d.Purge(fx.Hello, fx.HelloData)) })
				out, code := run(t, m, d.Refresh())
				if r.AtRefresh {
					require.NoError(t, Refused("refresh of the "+r.Name()+" repository", want, r.Pattern, code, out))
				} else {
					require.Equal(t, 0, code, "%s: the %s repository's refresh must succeed (%s refuses at install): %s", d.Name(), r.Repo, d.Name(), out)
				}
				out, code = run(t, m, d.Install("1.1", fx.Hello, fx.HelloData))
				pattern := r.Pattern
				if r.AtRefresh {
					pattern = "." // refused already; the install fails for want of the packages
				}
				require.NoError(t, Refused("install from the "+r.Name()+" repository", want, pattern, code, out))
				if want {
					got, _ := m.Output(t, d.Installed(fx.Hello))
					require.NoError(t, InstalledVersion(fx.Hello, "", got))
				}
			})
		}
	})
}
