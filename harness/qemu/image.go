package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ImageInfo is what qemu-img says about a disk image.
type ImageInfo struct {
	Path        string
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	BackingFile string `json:"backing-filename"`
}

// formats QEMU can back an overlay with and that cloud images ship as.
var formats = map[string]bool{"qcow2": true, "raw": true, "vpc": true, "vhdx": true, "vmdk": true}

// Inspect checks a user's image quickly (well under 2 s) and fails with a message that names the
// path and the fix: missing, unreadable, an unknown format, or no partition table. The sectors
// it reads go to files in scratch (a folder the caller removes, and which a killed process's
// successor cleans up; "" = the system's temporary folder).
func Inspect(ctx context.Context, path, scratch string) (ImageInfo, error) {
	if path == "" {
		return ImageInfo{}, fmt.Errorf("no image given: set VMTEST_IMAGE to a qcow2, raw, VHD or VHDX disk image, or run `make image` to build the stand-in")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ImageInfo{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %s: %w (set VMTEST_IMAGE to an existing disk image, or run `make image` to build the stand-in)", abs, err)
	}
	if st.IsDir() {
		return ImageInfo{}, fmt.Errorf("image %s is a directory, not a disk image", abs)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	c := Command(ctx, "qemu-img", "info", "--output=json", abs)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		if ctx.Err() != nil {
			return ImageInfo{}, fmt.Errorf("image %s: inspection stopped (%w): the test's deadline or a 10 s bound on qemu-img info ran out", abs, ctx.Err())
		}
		if _, lerr := exec.LookPath("qemu-img"); lerr != nil {
			return ImageInfo{}, fmt.Errorf("qemu-img not found: run scripts/host-setup.sh as root (or apt-get install qemu-utils)")
		}
		return ImageInfo{}, fmt.Errorf("image %s is not a readable disk image: qemu-img info: %s", abs, strings.TrimSpace(stderr.String()))
	}
	info := ImageInfo{Path: abs}
	if err := json.Unmarshal(out, &info); err != nil {
		return ImageInfo{}, fmt.Errorf("image %s: decoding qemu-img info: %w", abs, err)
	}
	if !formats[info.Format] {
		return ImageInfo{}, fmt.Errorf("image %s has format %q: use qcow2, raw, vpc (VHD) or vhdx", abs, info.Format)
	}
	if info.VirtualSize < 1<<20 {
		return ImageInfo{}, fmt.Errorf("image %s is %d bytes: too small to be a bootable disk (truncated download?)", abs, info.VirtualSize)
	}
	if info.Format == "qcow2" && info.BackingFile == "" {
		if err := checkQcow2(ctx, info); err != nil {
			return ImageInfo{}, err
		}
	}
	if err := checkPartitionTable(ctx, info, scratch); err != nil {
		return ImageInfo{}, err
	}
	return info, nil
}

// checkQcow2 runs `qemu-img check` (milliseconds): a truncated or corrupt qcow2 would otherwise
// boot to an initramfs prompt and wait out the boot timeout. Leaked clusters are harmless.
func checkQcow2(ctx context.Context, info ImageInfo) error {
	var stdout, stderr bytes.Buffer
	c := Command(ctx, "qemu-img", "check", "-U", "-f", "qcow2", info.Path)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 3: // leaked clusters only
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("image %s: qemu-img check: %w", info.Path, ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
	if lines := strings.Split(msg, "\n"); len(lines) > 8 {
		msg = strings.Join(append(lines[:8], fmt.Sprintf("... (%d more lines)", len(lines)-8)), "\n")
	}
	return fmt.Errorf("image %s is a corrupt or truncated qcow2 (qemu-img check failed): %s\n(download or build it again; `make image` rebuilds the stand-in)", info.Path, msg)
}

// checkPartitionTable reads the first two sectors through qemu-img (any format) and requires an
// MBR signature or a GPT header, so a corrupt image fails now rather than in the firmware.
func checkPartitionTable(ctx context.Context, info ImageInfo, scratch string) error {
	head, err := readRange(ctx, info, 0, 1024, scratch)
	if err != nil {
		return err
	}
	if len(head) < 1024 {
		return fmt.Errorf("image %s is truncated (first sectors unreadable)", info.Path)
	}
	mbr := head[510] == 0x55 && head[511] == 0xAA
	gpt := string(head[512:520]) == "EFI PART"
	if !mbr && !gpt {
		return fmt.Errorf("image %s (%s) has no partition table (neither MBR nor GPT): it is corrupt or not a bootable disk image", info.Path, info.Format)
	}
	if gpt {
		return checkBackupGPT(ctx, info, binary.LittleEndian.Uint64(head[512+32:512+40]), scratch)
	}
	return nil
}

// checkBackupGPT reads the GPT's backup header where the primary says it is (the disk's last
// sector): a raw or VHD image cut short has none, whatever its header says.
func checkBackupGPT(ctx context.Context, info ImageInfo, lba uint64, scratch string) error {
	if lba == 0 || int64(lba+1)*512 > info.VirtualSize {
		return fmt.Errorf("image %s (%s) is truncated: its GPT puts the backup header at sector %d, past the image's end (%d bytes)", info.Path, info.Format, lba, info.VirtualSize)
	}
	tail, err := readRange(ctx, info, int64(lba)*512, 512, scratch)
	if err != nil {
		return fmt.Errorf("%w (reading to its end)", err)
	}
	if len(tail) < 8 || string(tail[:8]) != "EFI PART" {
		return fmt.Errorf("image %s (%s) is damaged or truncated: no GPT backup header at sector %d (the disk's last)", info.Path, info.Format, lba)
	}
	return nil
}

// readRange reads n bytes of the image's guest-visible disk from offset off.
func readRange(ctx context.Context, info ImageInfo, off, n int64, scratch string) ([]byte, error) {
	tmp, err := os.CreateTemp(scratch, "range-*.raw")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := copyRange(ctx, info, off, n, tmp.Name()); err != nil {
		return nil, err
	}
	return os.ReadFile(tmp.Name())
}

// copyRange copies n bytes of the image's disk from offset off to the raw file dst with
// qemu-img dd (any format), in the largest block size that divides both.
func copyRange(ctx context.Context, info ImageInfo, off, n int64, dst string) error {
	bs := int64(1 << 20)
	for off%bs != 0 || n%bs != 0 {
		bs /= 2
	}
	var stderr bytes.Buffer
	// qemu-img dd counts count= from the start of the input, skipped blocks included.
	c := Command(ctx, "qemu-img", "dd", "-f", info.Format, "-O", "raw", fmt.Sprintf("bs=%d", bs),
		fmt.Sprintf("skip=%d", off/bs), fmt.Sprintf("count=%d", (off+n)/bs), "if="+info.Path, "of="+dst)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("image %s (%s) cannot be read: %s", info.Path, info.Format, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// CreateOverlay makes a qcow2 overlay over the base image, so the VM never writes the base.
func CreateOverlay(ctx context.Context, base ImageInfo, overlay string) error {
	var stderr bytes.Buffer
	c := Command(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", base.Format, "-b", base.Path, overlay)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("creating overlay over %s: %s", base.Path, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Command is a helper tool (qemu-img, a probe QEMU) run for the harness: it dies with the
// test process (Pdeathsig), and Wait returns at most 5 s after ctx ends even if the tool
// left children holding its output.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.WaitDelay = 5 * time.Second
	return c
}
