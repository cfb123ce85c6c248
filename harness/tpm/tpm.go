// Package tpm runs a software TPM 2.0 (swtpm) for one VM. Its state lives in the VM's private
// folder and its life is the VM's: it starts before QEMU, exits when QEMU's connection ends
// (--terminate), is killed with the test process (Pdeathsig) and stopped by Close.
package tpm

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Emulator is a running swtpm.
type Emulator struct {
	// Socket is the control socket QEMU's -tpmdev emulator connects to.
	Socket string
	cmd    *exec.Cmd
	done   chan struct{}
	log    string
	stderr bytes.Buffer
}

// Binary is the swtpm executable a VM's TPM runs, or an error naming the fix.
func Binary() (string, error) {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return "", errors.New("swtpm not found: a VM with a TPM needs it (run scripts/host-setup.sh as root, or apt-get install swtpm)")
	}
	return bin, nil
}

// Start runs swtpm with its state in dir/tpm. The control socket is made and listened on
// here and handed to swtpm as a file descriptor, so it exists before QEMU is started: nothing
// waits for swtpm to create it.
func Start(dir string) (*Emulator, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "tpm")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "swtpm.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("swtpm control socket: %w", err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the socket stays for swtpm when our listener closes
	lf, err := ul.File()
	ul.Close() // swtpm keeps the descriptor it inherits; ours is a duplicate
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	e := &Emulator{Socket: sock, done: make(chan struct{}), log: filepath.Join(dir, "swtpm.log")}
	e.cmd = exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--ctrl", "type=unixio,fd=3", "--terminate", "--log", "file="+e.log+",level=1")
	e.cmd.ExtraFiles = []*os.File{lf}
	e.cmd.Stderr = &e.stderr
	e.cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL, // dies with the test process, even on SIGKILL
		Setpgid:   true,            // a terminal's Ctrl-C reaches the test, which stops it
	}
	// Pdeathsig fires when the thread that forked swtpm exits: fork from a locked thread that
	// lives exactly as long as swtpm (as harness/qemu does for QEMU).
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := e.cmd.Start(); err != nil {
			started <- err
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		_ = e.cmd.Wait()
		close(e.done)
		// The thread is left locked on purpose: it exits with this goroutine.
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting swtpm: %w", err)
	}
	return e, nil
}

// Exited says why swtpm is no longer running (its stderr and log), or nil while it runs: a
// QEMU that cannot reach its TPM names the cause with it.
func (e *Emulator) Exited() error {
	select {
	case <-e.done:
		return fmt.Errorf("swtpm exited (%v): %s %s", e.cmd.ProcessState, strings.TrimSpace(e.stderr.String()), e.Log())
	default:
		return nil
	}
}

// Pid is swtpm's process ID.
func (e *Emulator) Pid() int { return e.cmd.Process.Pid }

// Log is what swtpm logged, for an error message.
func (e *Emulator) Log() string {
	b, _ := os.ReadFile(e.log)
	return strings.TrimSpace(string(b))
}

// Close stops swtpm: SIGTERM, then SIGKILL after two seconds.
func (e *Emulator) Close() {
	if e == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(2 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}
