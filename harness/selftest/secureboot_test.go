package selftest

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// TestUnsignedBootLoaderRefusedFast: a disk whose boot loader is not signed (the stand-in's
// shim with its Authenticode signature removed, beside the stand-in's signed GRUB and its
// configuration) stops in the Secure Boot firmware, and the boot fails at once with that
// reason ("refused by Secure Boot"), not at the boot timeout. Without Secure Boot the same
// disk gets further, which proves the loader itself works: shim starts GRUB, which cannot find
// the stand-in's root on this disk (GRUB's error, the "boot loader rescue" sign).
func TestUnsignedBootLoaderRefusedFast(t *testing.T) {
	cfg, err := harness.ConfigFromEnv()
	require.NoError(t, err)
	info, err := qemu.Inspect(t.Context(), cfg.Image, t.TempDir())
	require.NoError(t, err)
	boot := "EFI/BOOT/" + cfg.Arch.EFIBootFile
	shim, err := qemu.ReadESPFile(t.Context(), info, boot, t.TempDir())
	require.NoError(t, err, "the stand-in's shim")
	unsigned, err := stripAuthenticode(shim)
	require.NoError(t, err, "%s of %s", boot, cfg.Image)
	files := map[string][]byte{"/" + boot: unsigned}
	for _, f := range []string{"EFI/BOOT/grub" + cfg.Arch.EFISuffix + ".efi", "EFI/BOOT/grub.cfg", "EFI/debian/grub.cfg"} {
		b, err := qemu.ReadESPFile(t.Context(), info, f, t.TempDir())
		require.NoError(t, err)
		files["/"+f] = b
	}
	img := filepath.Join(t.TempDir(), "unsigned-loader.raw")
	require.NoError(t, espDisk(img, files))

	for _, c := range []struct {
		name   string
		secure bool
		sign   string
	}{
		{"secure-boot", true, "refused by Secure Boot"},
		{"no-secure-boot", false, "boot loader rescue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []harness.Option{harness.WithImage(img), harness.WithFreshBoot(), harness.WithBootTimeout(10 * time.Minute)}
			if c.secure {
				opts = append(opts, harness.WithSecureBoot())
			}
			start := time.Now()
			m, err := harness.Start(t.Context(), "unsigned-"+c.name, t.Logf, opts...)
			if m != nil {
				m.Close()
			}
			require.Error(t, err)
			t.Logf("after %.0f s: %v", time.Since(start).Seconds(), err)
			assert.Contains(t, err.Error(), c.sign)
			assert.NotContains(t, err.Error(), "boot timeout")
		})
	}
}

// stripAuthenticode returns a PE image without its Authenticode signature: the certificate
// table (data directory 4 of the optional header) emptied and cut off the end of the file.
func stripAuthenticode(pe []byte) ([]byte, error) {
	if len(pe) < 0x40 || string(pe[:2]) != "MZ" {
		return nil, errors.New("not a PE image")
	}
	off := int(binary.LittleEndian.Uint32(pe[0x3C:]))
	opt := off + 24 // "PE\0\0" and the 20-byte COFF header
	if opt+2 > len(pe) || string(pe[off:off+4]) != "PE\x00\x00" {
		return nil, errors.New("not a PE image")
	}
	dirs := opt + 96 // PE32
	if binary.LittleEndian.Uint16(pe[opt:]) == 0x20b {
		dirs = opt + 112 // PE32+
	}
	cert := dirs + 4*8
	if cert+8 > len(pe) {
		return nil, errors.New("PE optional header too short")
	}
	at, size := int(binary.LittleEndian.Uint32(pe[cert:])), int(binary.LittleEndian.Uint32(pe[cert+4:]))
	if at == 0 || size == 0 || at+size > len(pe) {
		return nil, errors.New("the image has no Authenticode signature to remove")
	}
	out := append([]byte(nil), pe[:at]...)
	binary.LittleEndian.PutUint64(out[cert:], 0)
	return out, nil
}

// espDisk writes a 64 MiB raw disk with a GPT and one FAT32 EFI System Partition holding files.
func espDisk(path string, files map[string][]byte) error {
	const size = 64 << 20
	d, err := diskfs.Create(path, size, diskfs.SectorSizeDefault)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Partition(&gpt.Table{ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: size/512 - 2048, Type: gpt.EFISystemPartition, Name: "EFI System"},
	}}); err != nil {
		return err
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32})
	if err != nil {
		return err
	}
	for name, b := range files {
		if err := fsys.Mkdir(filepath.Dir(name)); err != nil {
			return err
		}
		f, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
