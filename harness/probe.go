package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
	"github.com/azl-vmtest/azl-vmtest/harness/cache"
)

// ProbePath is where InstallProbe puts the helper in the guest.
const ProbePath = "/var/tmp/vmtest-probe"

// HostServiceIP is the guest-side address of services a test offers from the host
// (WithHostService): the guest connects to HostServiceIP:port.
const HostServiceIP = "10.0.2.100"

var (
	probeMu    sync.Mutex
	probeBuilt = map[string]string{}
)

// buildProbe builds cmd/vmtest-probe, static, for a (once per process).
func buildProbe(ctx context.Context, a arch.Arch) (string, error) {
	probeMu.Lock()
	defer probeMu.Unlock()
	if p, ok := probeBuilt[a.Name]; ok {
		return p, nil
	}
	// Built into the cache (not a temp folder that would outlive the process): go build's own
	// cache makes a rebuild cheap; a rename makes concurrent test binaries safe.
	dir := filepath.Join(cache.Dir(), "probe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "vmtest-probe-"+a.Name)
	tmp := fmt.Sprintf("%s.%d", out, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "github.com/azl-vmtest/azl-vmtest/cmd/vmtest-probe")
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building vmtest-probe for %s: %v\n%s", a.Name, err, stderr.String())
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	probeBuilt[a.Name] = out
	return out, nil
}

// InstallProbe copies the vmtest-probe helper (built for the guest's architecture) to
// ProbePath in the guest and returns that path.
func (m *Machine) InstallProbe(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(testContext(t), 2*time.Minute)
	defer cancel()
	m.mu.Lock()
	done := m.probe
	m.mu.Unlock()
	if done {
		return ProbePath
	}
	local, err := buildProbe(ctx, m.cfg.Arch)
	if err != nil {
		t.Fatal(err)
	}
	// Copy beside and rename: a probe still running (a listener) keeps its old inode.
	if err := m.CopyTo(ctx, local, ProbePath+".new", "0755"); err != nil {
		t.Fatal(err)
	}
	m.MustRun(t, "mv -f "+ProbePath+".new "+ProbePath)
	m.mu.Lock()
	m.probe = true
	m.mu.Unlock()
	return ProbePath
}

// ServeToken listens on 127.0.0.1 (a free port) and writes token and a newline to every
// connection: a host-side listener for a guest's outbound checks (see WithHostService). The
// returned stop closes it.
func ServeToken(token string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, token)
			c.Close()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

// ReadLine connects to addr and returns the first line it sends within timeout. With QEMU's
// user-net a host port forwarded to the guest always accepts the connection, so only data
// shows that the guest answered.
func ReadLine(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if line != "" {
		return strings.TrimRight(line, "\n"), nil
	}
	return "", err
}
