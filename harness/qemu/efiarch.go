package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	diskfs "github.com/diskfs/go-diskfs"
)

// espType is the EFI System Partition's type GUID (C12A7328-F81F-11D2-BA4B-00A0C93EC93B) as a
// GPT entry stores it (the first three fields little-endian).
var espType = []byte{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}

// peMachines maps a PE/COFF machine type to the architecture's name.
var peMachines = map[uint16]string{0x8664: "x86_64", 0xAA64: "aarch64"}

// EFIArchitectures says which architectures the image's UEFI boot loaders are built for, read
// from the PE headers of the .efi files on its EFI System Partition (shim, GRUB, the
// removable-media BOOTX64.EFI or BOOTAA64.EFI): an image for another architecture than the VM's
// is refused before QEMU starts, instead of its firmware finding nothing to boot minutes later.
// An image without a GPT, an ESP or any .efi file (a BIOS image) yields none: nothing to judge.
//
// Its temporary files (the ESP, up to a few hundred MiB) go in scratch, as Inspect's do.
func EFIArchitectures(ctx context.Context, info ImageInfo, scratch string) ([]string, error) {
	var archs []string
	err := withESP(ctx, info, scratch, func(fsys fs.FS) {
		_ = fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || !strings.EqualFold(path.Ext(p), ".efi") {
				return nil
			}
			f, err := fsys.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			pe := make([]byte, 4096)
			k, _ := io.ReadFull(f, pe)
			if a := peMachine(pe[:k]); a != "" && !slices.Contains(archs, a) {
				archs = append(archs, a)
			}
			return nil
		})
	})
	slices.Sort(archs)
	return archs, err
}

// ReadESPFile returns one file of the image's EFI System Partition (name as on the ESP, e.g.
// "EFI/BOOT/BOOTX64.EFI"), or an error when the image has no ESP go-diskfs reads or no such
// file. Its temporary files go in scratch, as EFIArchitectures' do.
func ReadESPFile(ctx context.Context, info ImageInfo, name, scratch string) ([]byte, error) {
	var data []byte
	var readErr error
	found := false
	err := withESP(ctx, info, scratch, func(fsys fs.FS) {
		found = true
		data, readErr = fs.ReadFile(fsys, name)
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("image %s: no EFI System Partition with a FAT filesystem", info.Path)
	case readErr != nil:
		return nil, fmt.Errorf("image %s: %s on its EFI System Partition: %w", info.Path, name, readErr)
	}
	return data, nil
}

// withESP copies the image's EFI System Partition into scratch and calls f with its
// filesystem; an image without a GPT, an ESP or a FAT filesystem go-diskfs reads calls nothing.
func withESP(ctx context.Context, info ImageInfo, scratch string, f func(fs.FS)) error {
	head, err := readRange(ctx, info, 0, 34*512, scratch)
	if err != nil {
		return err
	}
	if len(head) < 1024 || string(head[512:520]) != "EFI PART" {
		return nil
	}
	hdr := head[512:]
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[72:80]))
	n := int64(binary.LittleEndian.Uint32(hdr[80:84]))
	size := int64(binary.LittleEndian.Uint32(hdr[84:88]))
	if size < 128 || n > 1024 {
		return fmt.Errorf("image %s: its GPT header is damaged (%d entries of %d bytes)", info.Path, n, size)
	}
	if end := (entriesLBA*512 + n*size); end > int64(len(head)) {
		if head, err = readRange(ctx, info, 0, end, scratch); err != nil {
			return err
		}
	}
	var first, last int64
	for i := int64(0); i < n; i++ {
		e := head[entriesLBA*512+i*size:]
		if bytes.Equal(e[:16], espType) {
			first, last = int64(binary.LittleEndian.Uint64(e[32:40])), int64(binary.LittleEndian.Uint64(e[40:48]))
			break
		}
	}
	if first == 0 || last < first || (last+1)*512 > info.VirtualSize {
		return nil
	}
	esp, err := os.CreateTemp(scratch, "esp-*.raw")
	if err != nil {
		return err
	}
	esp.Close()
	defer os.Remove(esp.Name())
	if err := copyRange(ctx, info, first*512, (last+1-first)*512, esp.Name()); err != nil {
		return err
	}
	d, err := diskfs.Open(esp.Name(), diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil // not a filesystem go-diskfs reads: nothing to judge
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		return nil
	}
	f(fsys)
	return nil
}

// peMachine returns the architecture of a PE/COFF image's header, or "".
func peMachine(b []byte) string {
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return ""
	}
	off := int(binary.LittleEndian.Uint32(b[0x3C:0x40]))
	if off < 0 || off+6 > len(b) || string(b[off:off+4]) != "PE\x00\x00" {
		return ""
	}
	return peMachines[binary.LittleEndian.Uint16(b[off+4:off+6])]
}

// archCache keeps EFIArchitectures' answer per image file (path, size, modification time): a
// test process reads an image's ESP once, however many VMs it starts on it.
var archCache sync.Map

// CheckArch refuses an image whose UEFI boot loaders are all for another architecture than
// arch, naming both and the fix. scratch is as for EFIArchitectures.
func CheckArch(ctx context.Context, info ImageInfo, arch, scratch string) error {
	st, err := os.Stat(info.Path)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", info.Path, st.Size(), st.ModTime().UnixNano())
	v, ok := archCache.Load(key)
	if !ok {
		archs, err := EFIArchitectures(ctx, info, scratch)
		if err != nil {
			return err
		}
		archCache.Store(key, archs)
		v = archs
	}
	archs := v.([]string)
	if len(archs) == 0 || slices.Contains(archs, arch) {
		return nil
	}
	return fmt.Errorf("image %s is built for %s (the UEFI boot loaders on its EFI System Partition), not %s: set VMTEST_ARCH=%s, or VMTEST_IMAGE to an %s image",
		info.Path, strings.Join(archs, " and "), arch, archs[0], arch)
}
