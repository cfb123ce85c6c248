package storage

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/fixtures"
)

// Every row passes its recorded good answers and fails each recorded broken one
// (fixtures/<profile>/<probe>/). No VM.
func TestUnitChecksOnRecordedAnswers(t *testing.T) {
	fixtures.Audit(t, Checks)
}

func TestUnitSwapPromised(t *testing.T) {
	none := fixtures.Read(t, "standin", "swaps", "good-x86_64.txt")
	assert.ErrorContains(t, NoSwap(true, none), "swap: expected some, got none")
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
	// The stand-in's copy of azure-vm-utils' 80-azure-disk.rules.
	rule := `# From azure-vm-utils (80-azure-disk.rules): a longer I/O timeout for Azure's NVMe disks only.
ACTION!="add|change", GOTO="azure_disk_end"
SUBSYSTEM!="block", GOTO="azure_disk_end"
KERNEL=="nvme*", ENV{DEVTYPE}=="disk", ENV{ID_MODEL}=="MSFT NVMe Accelerator v1.0", ATTR{queue/io_timeout}="240000"
LABEL="azure_disk_end"
`
	const model = "MSFT NVMe Accelerator v1.0"
	require.NoError(t, NVMeRule("/r", model, 240000, rule))
	for broken, msg := range map[string]string{
		strings.Replace(rule, `io_timeout}="240000"`, `io_timeout}="30000"`, 1):                                                `ATTR{queue/io_timeout}: expected "240000", got "30000"`,
		strings.Replace(rule, `ENV{ID_MODEL}=="MSFT NVMe Accelerator v1.0"`, `ENV{ID_MODEL}=="MSFT NVMe Accelerator v2.0"`, 1): `ENV{ID_MODEL} match: expected "MSFT NVMe Accelerator v1.0", got "MSFT NVMe Accelerator v2.0"`,
		strings.Replace(rule, `, ENV{ID_MODEL}=="MSFT NVMe Accelerator v1.0"`, "", 1):                                          `ENV{ID_MODEL} match: expected "MSFT NVMe Accelerator v1.0", got ""`, // every disk
		strings.Replace(rule, `KERNEL=="nvme*"`, `KERNEL=="sd*"`, 1):                                                           `KERNEL match: expected "nvme*", got "sd*"`,
		// The model named only in a comment: a substring test passed this.
		"# MSFT NVMe Accelerator v1.0 ATTR{queue/io_timeout}=\"240000\"\n": `expected a rule setting ATTR{queue/io_timeout}`,
	} {
		err := NVMeRule("/r", model, 240000, broken)
		require.Error(t, err)
		assert.Contains(t, err.Error(), msg)
	}
	r, ok := ParseNVMeRule(rule)
	require.True(t, ok)
	assert.Equal(t, NVMeRuleLine{Kernel: "nvme*", Model: model, TimeoutMS: "240000"}, r)
	var err error

	require.NoError(t, NVMeTimeout("nvme0n1", "QEMU NVMe Ctrl", "MSFT NVMe Accelerator v1.0", 240000, "30000"))
	require.NoError(t, NVMeTimeout("nvme0n1", "MSFT NVMe Accelerator v1.0", "MSFT NVMe Accelerator v1.0", 240000, "240000"))
	err = NVMeTimeout("nvme0n1", "MSFT NVMe Accelerator v1.0", "MSFT NVMe Accelerator v1.0", 240000, "30000")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected 240000, got 30000")
	err = NVMeTimeout("nvme0n1", "QEMU NVMe Ctrl", "MSFT NVMe Accelerator v1.0", 240000, "240000")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected the default")
}
