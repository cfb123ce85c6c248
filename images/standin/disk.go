package standin

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Disk layout, like Azure Linux 4.0's: GPT, an ESP and one ext4 root (no separate /boot).
const (
	mib        = 1 << 20
	espSize    = 200 * mib
	rootSize   = 4096 * mib
	rootLabel  = "azurelinux"
	espPartTyp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
)

// kernelArgs are what the flavour adds to the kernel command line (before "quiet").
func (f Flavour) kernelArgs() string {
	if f == FIPS {
		return " fips=1" // the kernel's FIPS mode: fips_enabled=1, self-tested crypto only
	}
	return ""
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// assembleDisk makes a bootable GPT disk from rootfs without loop devices or mounts:
// mkfs.ext4 -d fills the root from the folder, mtools fills the ESP, dd places both.
func (b *builder) assembleDisk(ctx context.Context, rootfs, work, raw string) error {
	a := b.opts.Arch
	kernels, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		return fmt.Errorf("no kernel in %s/boot: is %s in the package list?", rootfs, a.KernelPackage)
	}
	sort.Strings(kernels)
	kver := strings.TrimPrefix(filepath.Base(kernels[len(kernels)-1]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(rootfs, "boot", "initrd.img-"+kver)); err != nil {
		return fmt.Errorf("no initrd for kernel %s: %w", kver, err)
	}
	rootUUID, partUUID := uuid4(), uuid4()
	var vb [4]byte
	_, _ = rand.Read(vb[:])
	espVolID := fmt.Sprintf("%02X%02X%02X%02X", vb[0], vb[1], vb[2], vb[3])
	espUUID := espVolID[:4] + "-" + espVolID[4:]

	b.stage("disk: kernel %s, root UUID %s", kver, rootUUID)
	fstab := fmt.Sprintf("# <fs> <mountpoint> <type> <options> <dump> <pass>\nUUID=%s / ext4 defaults,errors=remount-ro 0 1\nUUID=%s /boot/efi vfat umask=0077 0 2\n", rootUUID, espUUID)
	cmdline := fmt.Sprintf("root=UUID=%s ro console=%s,115200 rd.shell=0 security=selinux%s quiet", rootUUID, a.Console, b.opts.Flavour.kernelArgs())
	grubCfg := fmt.Sprintf(`set timeout=0
set default=0
menuentry 'Azure Linux stand-in (Debian %s, %s)' {
	search --no-floppy --fs-uuid --set=root %s
	linux /boot/vmlinuz-%s %s
	initrd /boot/initrd.img-%s
}
`, Suite, kver, rootUUID, kver, cmdline, kver)
	files := map[string]string{
		"etc/fstab":           fstab,
		"boot/grub/grub.cfg":  grubCfg,
		"etc/kernel/cmdline":  cmdline + "\n",
		"etc/azl-vmtest-base": fmt.Sprintf("%s %s %s key=%s\n", b.opts.Flavour.imageName(), a.Name, Suite, Key(a, b.opts.Flavour)),
	}
	for p, content := range files {
		full := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "boot", "efi"), 0o700); err != nil {
		return err
	}

	if err := b.label(ctx, rootfs); err != nil {
		return err
	}

	b.stage("disk: ext4 root (%d MiB, label %s) from the folder", rootSize/mib, rootLabel)
	rootImg := filepath.Join(work, "root.ext4")
	if err := b.cmd(ctx, "mkfs.ext4", "-q", "-F", "-L", rootLabel, "-U", rootUUID, "-d", rootfs, rootImg, fmt.Sprintf("%dM", rootSize/mib)); err != nil {
		return err
	}

	if err := b.assembleESP(ctx, rootfs, work, espVolID, rootUUID); err != nil {
		return err
	}

	b.stage("disk: GPT")
	total := int64(mib + espSize + rootSize + mib)
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	if err := f.Truncate(total); err != nil {
		f.Close()
		return err
	}
	f.Close()
	layout := fmt.Sprintf("label: gpt\nunit: sectors\n\nstart=2048, size=%d, type=%s, name=\"EFI System\"\nstart=%d, size=%d, type=%s, uuid=%s, name=\"root\"\n",
		espSize/512, espPartTyp, 2048+espSize/512, rootSize/512, a.RootPartType, partUUID)
	if err := b.cmdIn(ctx, strings.NewReader(layout), "sfdisk", "--quiet", raw); err != nil {
		return err
	}
	for _, p := range []struct {
		img    string
		offset int64
	}{{filepath.Join(work, "esp.img"), mib}, {rootImg, mib + espSize}} {
		if err := b.cmd(ctx, "dd", "if="+p.img, "of="+raw, "bs=1M", fmt.Sprintf("seek=%d", p.offset/mib), "conv=notrunc,sparse", "status=none"); err != nil {
			return err
		}
	}
	return nil
}

// assembleESP makes the ESP image (work/esp.img) with Debian's signed boot chain, laid out as
// on removable media so the firmware needs no boot entry: shim (signed by Microsoft's UEFI CA)
// as EFI/BOOT/BOOT<arch>.EFI, beside it the signed GRUB it starts and MokManager, and the
// GRUB configuration the signed GRUB reads from its built-in prefix EFI/debian (a copy beside
// GRUB too), which finds the root filesystem and its /boot/grub/grub.cfg. Under Secure Boot
// shim checks GRUB and GRUB has shim check the kernel (Debian's signed cloud kernel); with
// Secure Boot off the same chain boots unchecked. No fallback (fb*.efi): it would add a boot
// entry and reset the machine.
func (b *builder) assembleESP(ctx context.Context, rootfs, work, volID, rootUUID string) error {
	a := b.opts.Arch
	b.stage("disk: ESP with the signed chain: shim%s.efi, grub%s.efi (%s)", a.EFISuffix, a.EFISuffix, a.EFIBootFile)
	cfg := filepath.Join(work, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n", rootUUID)), 0o644); err != nil {
		return err
	}
	chain := []struct{ from, to string }{
		{filepath.Join(rootfs, "usr/lib/shim", "shim"+a.EFISuffix+".efi.signed"), "::/EFI/BOOT/" + a.EFIBootFile},
		{filepath.Join(rootfs, "usr/lib/shim", "mm"+a.EFISuffix+".efi.signed"), "::/EFI/BOOT/mm" + a.EFISuffix + ".efi"},
		{filepath.Join(rootfs, "usr/lib/grub", a.GrubTarget+"-signed", "grub"+a.EFISuffix+".efi.signed"), "::/EFI/BOOT/grub" + a.EFISuffix + ".efi"},
		{cfg, "::/EFI/BOOT/grub.cfg"},
		{cfg, "::/EFI/debian/grub.cfg"},
	}
	for _, c := range chain {
		if _, err := os.Stat(c.from); err != nil {
			return fmt.Errorf("signed boot chain: %w (are shim-signed and %s in the package list?)", err, a.GrubSignedPackage)
		}
	}
	espImg := filepath.Join(work, "esp.img")
	if err := b.cmd(ctx, "mkfs.vfat", "-C", "-F", "32", "-n", "ESP", "-i", volID, espImg, fmt.Sprint(espSize/1024)); err != nil {
		return err
	}
	if err := b.cmd(ctx, "mmd", "-i", espImg, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"); err != nil {
		return err
	}
	for _, c := range chain {
		if err := b.cmd(ctx, "mcopy", "-i", espImg, c.from, c.to); err != nil {
			return err
		}
	}
	return nil
}

// label gives every file of the root filesystem its SELinux context (security.selinux, which
// mkfs.ext4 -d copies) with the image's own setfiles and file contexts, run in the root (under
// qemu-user for another architecture), so the first boot needs no relabel. setfiles labels
// through /proc/self/fd: a private mount namespace gives the root a /proc that vanishes with it.
func (b *builder) label(ctx context.Context, rootfs string) error {
	const fc = "/etc/selinux/default/contexts/files/file_contexts"
	if _, err := os.Stat(filepath.Join(rootfs, fc)); err != nil {
		return fmt.Errorf("SELinux labels: %w (is selinux-policy-default in the package list?)", err)
	}
	b.stage("disk: SELinux labels (setfiles)")
	return b.cmd(ctx, "unshare", "--mount", "--propagation", "private", "--fork", "chroot", rootfs, "sh", "-c",
		"mount -t proc proc /proc && exec setfiles -F -e /proc -e /sys -e /dev -e /run "+fc+" /")
}
