package storage

import (
	"fmt"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

// One VM for the package's read-only checks; each test that changes the guest (hot-plugged
// disks, fstab, a reboot) restores its own.
var vm = harness.NewShared()

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }

// TestChecks runs the read-only checks (Checks): one subtest per profile key.
func TestChecks(t *testing.T) { harness.Check(t, vm.Machine(t), Checks) }

func TestHotplugDisks(t *testing.T) {
	buses := harness.Want[[]string](t, vm.Machine(t), "storage.hotplug_buses")
	m := harness.Boot(t)
	for _, bus := range buses {
		t.Run(bus, func(t *testing.T) {
			serial := "hp" + strings.ReplaceAll(bus, "-", "")
			m.AttachDisk(t, serial, bus, 64)
			out, code := m.Output(t, CmdFindDisk(serial))
			require.NoError(t, DiskAppeared(serial, bus, code, out))
			name := strings.TrimSpace(out)
			m.MustRun(t, fmt.Sprintf("sudo dd if=/dev/zero of=/dev/%s bs=1M count=4 oflag=direct status=none", name))
			m.DetachDisk(t, serial)
			out, code = m.Output(t, CmdDiskGone(serial))
			require.NoError(t, DiskGone(serial, code, out))
		})
	}
}

// TestFilesystemsSurviveReboot: each promised filesystem on its own partition of a hot-plugged
// disk is created, mounted, written with fsync, checksummed, remounted, listed in fstab, and
// found intact after a reboot.
func TestFilesystemsSurviveReboot(t *testing.T) {
	harness.Long(t, "its own VM, a hot-plugged disk and a reboot")
	fss := harness.Want[[]string](t, vm.Machine(t), "storage.filesystems")
	m := harness.Boot(t)
	const serial = "fsdata"
	m.AttachDisk(t, serial, harness.BusVirtio, 400*len(fss)+16)
	out, code := m.Output(t, CmdFindDisk(serial))
	require.NoError(t, DiskAppeared(serial, harness.BusVirtio, code, out))
	disk := "/dev/" + strings.TrimSpace(out)
	var layout strings.Builder
	layout.WriteString("label: gpt\n")
	for range fss {
		layout.WriteString("size=400MiB\n")
	}
	m.MustRun(t, fmt.Sprintf("printf '%s' | sudo sfdisk -q %s && sudo udevadm settle", strings.ReplaceAll(layout.String(), "\n", `\n`), disk))
	sums := map[string]string{}
	for i, fs := range fss {
		part := m.MustRun(t, fmt.Sprintf("lsblk -ln -o PATH,TYPE %s | awk '$2==\"part\"{print $1}' | sed -n %dp", disk, i+1))
		mnt := "/mnt/vmtest-fs-" + fs
		_, code := m.Output(t, "command -v mkfs."+fs+" || test -x /usr/sbin/mkfs."+fs+" || test -x /sbin/mkfs."+fs)
		require.Equal(t, 0, code, "filesystem %s: expected mkfs.%s in the image, got none", fs, fs)
		force := map[string]string{"ext4": "-F", "xfs": "-f", "btrfs": "-f"}[fs]
		m.MustRun(t, fmt.Sprintf("sudo mkfs.%s -q %s %s && sudo mkdir -p %s && sudo mount %s %s", fs, force, part, mnt, part, mnt))
		require.NoError(t, Mounted(mnt, fs, m.MustRun(t, "findmnt -n -o SOURCE,FSTYPE "+mnt)))
		m.MustRun(t, fmt.Sprintf("sudo dd if=/dev/urandom of=%s/data bs=1M count=8 conv=fsync status=none", mnt))
		sums[fs] = m.MustRun(t, "sha256sum "+mnt+"/data")
		m.MustRun(t, fmt.Sprintf("sudo umount %s && sudo mount %s %s", mnt, part, mnt))
		require.NoError(t, Checksum(fs+" after remount", sums[fs], m.MustRun(t, "sha256sum "+mnt+"/data")))
		uuid := m.MustRun(t, "sudo blkid -s UUID -o value "+part)
		m.MustRun(t, fmt.Sprintf("echo 'UUID=%s %s %s defaults,nofail 0 0' | sudo tee -a /etc/fstab >/dev/null", uuid, mnt, fs))
	}
	m.Reboot(t)
	for _, fs := range fss {
		mnt := "/mnt/vmtest-fs-" + fs
		got, _ := m.Output(t, "findmnt -n -o SOURCE,FSTYPE "+mnt)
		require.NoError(t, Mounted(mnt, fs, got), "after reboot (fstab)")
		require.NoError(t, Checksum(fs+" after reboot", sums[fs], m.MustRun(t, "sha256sum "+mnt+"/data")))
	}
}

func TestNVMeTimeoutRule(t *testing.T) {
	rule := harness.Want[string](t, vm.Machine(t), "storage.nvme_rule")
	model := harness.Want[string](t, vm.Machine(t), "storage.nvme_model")
	timeout := harness.Want[int](t, vm.Machine(t), "storage.nvme_timeout_ms")
	m := harness.Boot(t)
	content, code := m.Output(t, "cat "+rule)
	require.Equal(t, 0, code, "NVMe timeout rule: expected %s, got none", rule)
	require.NoError(t, NVMeRule(rule, model, timeout, content))

	// The rule is really evaluated, both ways. On the disk QEMU offers (its model is not Azure's)
	// the rule must leave the default; then a copy of the same rule that names QEMU's model, put
	// where udev prefers it (/run/udev/rules.d, same file name), must set the rule's timeout.
	const serial = "nvmeto"
	m.AttachDisk(t, serial, harness.BusNVMe, 64)
	out, code := m.Output(t, CmdFindDisk(serial))
	require.NoError(t, DiskAppeared(serial, harness.BusNVMe, code, out))
	name := strings.TrimSpace(out)
	diskModel := strings.TrimSpace(m.MustRun(t, "udevadm settle; cat /sys/block/"+name+"/device/model"))
	got := m.MustRun(t, "cat /sys/block/"+name+"/queue/io_timeout")
	require.NoError(t, NVMeTimeout(name, diskModel, model, timeout, got))
	if diskModel == model {
		return // an Azure NVMe disk: the matching case is what was just checked
	}
	local := "/run/udev/rules.d/" + path.Base(rule)
	m.MustRun(t, fmt.Sprintf("sudo mkdir -p /run/udev/rules.d && sed 's|ENV{ID_MODEL}==\"%s\"|ENV{ID_MODEL}==\"%s\"|' %s | sudo tee %s >/dev/null", model, diskModel, rule, local))
	copyRule := m.MustRun(t, "cat "+local)
	require.NoError(t, NVMeRule(local, diskModel, timeout, copyRule), "the rule's copy for QEMU's model")
	m.MustRun(t, "sudo udevadm control --reload && sudo udevadm trigger --action=change --settle /sys/block/"+name)
	got = m.MustRun(t, "cat /sys/block/"+name+"/queue/io_timeout")
	require.NoError(t, NVMeTimeout(name, diskModel, diskModel, timeout, got), "with the rule naming this disk's model")
}
