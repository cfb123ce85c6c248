package storage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitNoSwap(t *testing.T) {
	header := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	require.NoError(t, NoSwap(false, header))
	err := NoSwap(false, header+"/swapfile                               file\t\t1048572\t\t0\t\t-2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected none on the OS disk, got "/swapfile"`)
}

func TestUnitDisk(t *testing.T) {
	require.NoError(t, DiskAppeared("hpvirtioblk", "virtio-blk", 0, "vdc\n"))
	err := DiskAppeared("hpvirtioblk", "virtio-blk", 1, "vda\nvdb\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected it in lsblk, got only "vda\nvdb"`)
	require.NoError(t, DiskGone("x", 0, ""))
	err = DiskGone("hpnvme", 1, "nvme0n1 hpnvme")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected it gone from lsblk, got "nvme0n1 hpnvme"`)
}

func TestUnitChecksumAndMount(t *testing.T) {
	require.NoError(t, Checksum("xfs", "abc  /mnt/a/data", "abc  /mnt/a/data"))
	err := Checksum("xfs after reboot", "abc  /mnt/a/data", "def  /mnt/a/data")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `xfs after reboot sha256: expected "abc", got "def"`)
	require.NoError(t, Mounted("/", "ext4", "/dev/vda2 ext4"))
	err = Mounted("/mnt/vmtest-fs-btrfs", "btrfs", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected a mounted btrfs filesystem, got nothing mounted")
	err = Mounted("/", "ext4", "/dev/vda2 xfs")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected "ext4", got "xfs"`)
}

func TestUnitNVMe(t *testing.T) {
	rule := `KERNEL=="nvme*", ENV{ID_MODEL}=="MSFT NVMe Accelerator v1.0", ATTR{queue/io_timeout}="240000"`
	require.NoError(t, NVMeRule("/r", "MSFT NVMe Accelerator v1.0", 240000, rule))
	err := NVMeRule("/r", "MSFT NVMe Accelerator v1.0", 240000, `ATTR{queue/io_timeout}="30000"`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `expected ATTR{queue/io_timeout}="240000", got:`)
	assert.Contains(t, err.Error(), `expected a match on model "MSFT NVMe Accelerator v1.0"`)

	require.NoError(t, NVMeTimeout("nvme0n1", "QEMU NVMe Ctrl", "MSFT NVMe Accelerator v1.0", 240000, "30000"))
	require.NoError(t, NVMeTimeout("nvme0n1", "MSFT NVMe Accelerator v1.0", "MSFT NVMe Accelerator v1.0", 240000, "240000"))
	err = NVMeTimeout("nvme0n1", "MSFT NVMe Accelerator v1.0", "MSFT NVMe Accelerator v1.0", 240000, "30000")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected 240000, got 30000")
	err = NVMeTimeout("nvme0n1", "QEMU NVMe Ctrl", "MSFT NVMe Accelerator v1.0", 240000, "240000")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected the default")
}
