package packages

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	dir, err := os.MkdirTemp("", "vmtest-repos-*")
	if err == nil {
		repos = dir
		err = buildRepos(dir)
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
		os.Exit(1)
	}
	vm = harness.NewShared(harness.WithHostService(repoPort, addr))
	code := vm.Main(m)
	_ = srv.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildRepos builds the packages for the VM's architecture and four repositories of them:
// trusted (signed with the key the guest gets), unsigned, untrusted (signed with another key)
// and altered (signed, then vmtest-hello 1.1 changed after indexing).
func buildRepos(dir string) error {
	cfg, err := harness.ConfigFromEnv()
	if err != nil {
		return err
	}
	if trusted, err = fx.NewKey("azl-vmtest trusted"); err != nil {
		return err
	}
	other, err := fx.NewKey("azl-vmtest untrusted")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "trusted.asc"), trusted.Public, 0o644); err != nil {
		return err
	}
	pool := filepath.Join(dir, "pool")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	var debs []string
	for _, v := range fx.Versions {
		for _, n := range []string{fx.Hello, fx.HelloData} {
			p, err := fx.Build(pool, fx.Spec{Name: n, Version: v, Format: fx.Deb, Arch: cfg.Arch.Name})
			if err != nil {
				return err
			}
			debs = append(debs, p)
		}
	}
	for name, key := range map[string]*fx.Key{"trusted": trusted, "unsigned": nil, "untrusted": other, "altered": trusted} {
		if err := fx.AptRepo(filepath.Join(dir, name), debs, key); err != nil {
			return err
		}
	}
	// Altered after signing: the newest vmtest-hello's last byte changes, its index does not.
	victim := filepath.Join(dir, "altered", fx.Spec{Name: fx.Hello, Version: fx.Versions[1], Format: fx.Deb, Arch: cfg.Arch.Name}.FileName())
	b, err := os.ReadFile(victim)
	if err != nil {
		return err
	}
	b[len(b)-1] ^= 0xff
	return os.WriteFile(victim, b, 0o644)
}

// driver returns the machine's driver, or skips saying which is missing.
func driver(t *testing.T, m *harness.Machine) Driver {
	d, why := For(harness.Want[string](t, m, "packages.manager"))
	if d == nil {
		t.Skip(why)
	}
	return d
}

// useRepo gives the guest the trusted key and makes repository name the only one.
func useRepo(t *testing.T, m *harness.Machine, d Driver, name string) {
	t.Helper()
	const key = "/etc/vmtest-repo-key.asc"
	require.NoError(t, m.CopyTo(t.Context(), filepath.Join(repos, "trusted.asc"), "/tmp/vmtest-repo-key.asc", "0644"))
	m.MustRun(t, "sudo install -m 0644 /tmp/vmtest-repo-key.asc "+key)
	m.MustRun(t, d.UseRepo(fmt.Sprintf("http://%s:%d/%s/", harness.HostServiceIP, repoPort, name), key))
}

// run runs a step and returns its output and exit code.
func run(t *testing.T, m *harness.Machine, cmd string) (string, int) {
	t.Helper()
	out, code := m.Output(t, cmd)
	t.Logf("$ %s\n%s(exit %d)", cmd, check.LastLines(out, 8)+"\n", code)
	return out, code
}

// TestLifecycle: install 1.0 (with its dependency), verified clean, its unit started by its
// scriptlet; 1.1 offered; upgrade keeping a locally edited configuration file; downgrade;
// remove (program and unit gone) and purge (configuration gone); the database clean.
func TestLifecycle(t *testing.T) {
	m := vm.Machine(t)
	d := driver(t, m)
	useRepo(t, m, d, "trusted")
	installed := func(pkg, want string) {
		t.Helper()
		out, _ := m.Output(t, d.Installed(pkg))
		require.NoError(t, InstalledVersion(pkg, want, out))
	}
	t.Cleanup(func() { m.Output(t, d.Purge(fx.Hello, fx.HelloData)) })

	out, code := run(t, m, d.Refresh())
	require.Equal(t, 0, code, "refreshing the signed repository: %s", out)
	out, code = run(t, m, d.Install("1.0", fx.Hello, fx.HelloData))
	require.Equal(t, 0, code, "install 1.0: %s", out)
	installed(fx.Hello, "1.0")
	installed(fx.HelloData, "1.0")
	out, code = run(t, m, d.Verify(fx.Hello))
	require.NoError(t, Clean("verify "+fx.Hello+" 1.0", code, out))
	assert.Equal(t, "vmtest-hello 1.0 vmtest-hello-data 1.0", strings.TrimSpace(m.MustRun(t, fx.Program)))
	state, _ := m.Output(t, "systemctl is-active "+fx.Unit+"; systemctl is-enabled "+fx.Unit)
	assert.Equal(t, "active\nenabled", strings.TrimSpace(state), "%s after install (its postinstall enables and starts it)", fx.Unit)
	assert.Contains(t, m.MustRun(t, "cat "+fx.Trace), "postinstall 1.0")

	out, _ = run(t, m, d.CheckUpdate())
	require.NoError(t, Upgradable(fx.Hello, "1.1", out))

	m.MustRun(t, "echo 'greeting=edited locally' | sudo tee -a "+fx.Config)
	out, code = run(t, m, d.Upgrade(fx.Hello, fx.HelloData))
	require.Equal(t, 0, code, "upgrade: %s", out)
	installed(fx.Hello, "1.1")
	assert.Contains(t, m.MustRun(t, "cat "+fx.Config), "edited locally", "the locally edited %s is kept on upgrade", fx.Config)
	assert.Contains(t, m.MustRun(t, "cat "+fx.Config+".dpkg-dist"), "vmtest-hello 1.1", "the package's new %s is written beside it", fx.Config)
	assert.Equal(t, "vmtest-hello 1.1 vmtest-hello-data 1.1", strings.TrimSpace(m.MustRun(t, fx.Program)))

	out, code = run(t, m, d.Downgrade("1.0", fx.Hello, fx.HelloData))
	require.Equal(t, 0, code, "downgrade: %s", out)
	installed(fx.Hello, "1.0")
	installed(fx.HelloData, "1.0")

	out, code = run(t, m, d.Remove(fx.Hello))
	require.Equal(t, 0, code, "remove: %s", out)
	installed(fx.Hello, "")
	_, code = m.Output(t, "test -e "+fx.Program+" || test -e "+fx.UnitPath)
	assert.NotEqual(t, 0, code, "%s and %s must be gone after remove", fx.Program, fx.UnitPath)
	assert.Contains(t, m.MustRun(t, "cat "+fx.Trace), "preremove 1.0 remove")
	out, code = run(t, m, d.Purge(fx.Hello, fx.HelloData))
	require.Equal(t, 0, code, "purge: %s", out)
	_, code = m.Output(t, "test -e "+fx.Config)
	assert.NotEqual(t, 0, code, "%s must be gone after purge", fx.Config)
	out, code = run(t, m, d.Audit())
	require.NoError(t, Clean("package database audit", code, out))
}

// TestRefusals: with gpgcheck promised, an unsigned repository, one signed by a key the guest
// does not trust, and a package altered after signing are each refused with the manager's own
// error, and nothing is installed (gpgcheck off: each is accepted).
func TestRefusals(t *testing.T) {
	m := vm.Machine(t)
	d := driver(t, m)
	want := harness.Want[bool](t, m, "packages.gpgcheck")
	e := d.Errors()
	for _, c := range []struct{ repo, pattern string }{
		{"unsigned", e.Unsigned}, {"untrusted", e.Untrusted}, {"altered", e.Altered},
	} {
		t.Run(c.repo, func(t *testing.T) {
			useRepo(t, m, d, c.repo)
			t.Cleanup(func() { m.Output(t, d.Purge(fx.Hello, fx.HelloData)) })
			out, code := run(t, m, d.Refresh())
			if c.repo != "altered" {
				require.NoError(t, Refused("refresh of the "+c.repo+" repository", want, c.pattern, code, out))
			} else {
				require.Equal(t, 0, code, "the altered repository's index is signed: %s", out)
			}
			out, code = run(t, m, d.Install("1.1", fx.Hello, fx.HelloData))
			if c.repo == "altered" {
				require.NoError(t, Refused("install of a package altered after signing", want, c.pattern, code, out))
			} else {
				require.NoError(t, Refused("install from the "+c.repo+" repository", want, ".", code, out))
			}
			if want {
				got, _ := m.Output(t, d.Installed(fx.Hello))
				require.NoError(t, InstalledVersion(fx.Hello, "", got))
			}
		})
	}
}
