package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azl-vmtest/azl-vmtest/harness/qemu"
)

// hotplugSlots is how many empty PCIe root ports every VM gets for hot-plugged disks.
const hotplugSlots = 2

// Disk buses AttachDisk knows.
const (
	BusVirtio = "virtio-blk"
	BusNVMe   = "nvme"
)

// AttachDisk creates an empty qcow2 data disk of sizeMB in the VM's private folder and
// hot-plugs it through QMP (blockdev-add + device_add) on bus (BusVirtio or BusNVMe). The disk's
// serial is id, so the guest finds it by serial (lsblk -o SERIAL). The test's cleanup detaches it
// if the test did not (a failed assertion must not leak a hot-plug slot into later tests), except
// from the test's own machine (see unplugsAtCleanup).
func (m *Machine) AttachDisk(t testing.TB, id, bus string, sizeMB int) {
	m.Require(t, PowerQMP)
	t.Helper()
	if err := m.wake(); err != nil { // the guest's kernel takes the disk
		t.Fatalf("attaching disk %s (%s): %v", id, bus, err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	if err := m.attachDisk(ctx, id, bus, sizeMB); err != nil {
		t.Fatalf("attaching disk %s (%s): %v", id, bus, err)
	}
	t.Cleanup(func() {
		if m.unplugsAtCleanup(t) && m.attached(id) && m.Dead() == nil {
			m.DetachDisk(t, id)
		}
	})
}

// unplugsAtCleanup reports whether t's end must unplug the disks t attached: not from the
// machine Boot started for t itself, which is stopped right after. Its artifacts then show the
// guest as the test left it (an unplug under a mounted filesystem fills the console and the
// journal with I/O errors), and a wedged guest does not hold them back for the unplug's two
// minutes. A shared machine, or a test's machine used by its subtest, still gets its slots back.
func (m *Machine) unplugsAtCleanup(t testing.TB) bool { return m.owner != t }

// attached reports whether the disk id is still hot-plugged.
func (m *Machine) attached(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, used := range m.slots {
		if used == id {
			return true
		}
	}
	return false
}

func (m *Machine) attachDisk(ctx context.Context, id, bus string, sizeMB int) error {
	driver := map[string]string{BusVirtio: "virtio-blk-pci", BusNVMe: "nvme"}[bus]
	if driver == "" {
		return fmt.Errorf("unknown bus %q: use %s or %s", bus, BusVirtio, BusNVMe)
	}
	m.mu.Lock()
	slot := -1
	for i, used := range m.slots {
		if used == "" {
			slot = i
			m.slots[i] = id
			break
		}
	}
	m.mu.Unlock()
	if slot < 0 {
		return fmt.Errorf("all %d hot-plug slots are in use: detach a disk first", hotplugSlots)
	}
	path := filepath.Join(m.dir, "disk-"+id+".qcow2")
	if out, err := qemu.Command(ctx, "qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprintf("%dM", sizeMB)).CombinedOutput(); err != nil {
		m.freeSlot(id)
		return fmt.Errorf("qemu-img create: %v: %s", err, out)
	}
	node := "node-" + id
	if err := m.inst.QMP.Run(ctx, "blockdev-add", map[string]any{
		"driver": "qcow2", "node-name": node,
		"file": map[string]any{"driver": "file", "filename": path},
	}, nil); err != nil {
		m.freeSlot(id)
		return err
	}
	if err := m.inst.QMP.Run(ctx, "device_add", map[string]any{
		"driver": driver, "id": id, "drive": node, "serial": id,
		"bus": fmt.Sprintf("%s%d", qemu.HotplugPortPrefix, slot),
	}, nil); err != nil {
		_ = m.inst.QMP.Run(ctx, "blockdev-del", map[string]any{"node-name": node}, nil)
		m.freeSlot(id)
		return err
	}
	return nil
}

// DetachDisk hot-unplugs a disk AttachDisk added and waits until QEMU has released it (the
// guest acknowledged the removal).
func (m *Machine) DetachDisk(t testing.TB, id string) {
	m.Require(t, PowerQMP)
	t.Helper()
	if err := m.wake(); err != nil { // the guest's kernel lets the disk go
		t.Fatalf("device_del %s: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), 2*time.Minute)
	defer cancel()
	if err := m.inst.QMP.Run(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
		t.Fatalf("device_del %s: %v", id, err)
	}
	// blockdev-del fails while the device still uses the node: it succeeds once the guest
	// has let go of the device.
	for {
		err := m.inst.QMP.Run(ctx, "blockdev-del", map[string]any{"node-name": "node-" + id}, nil)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "in use") && !strings.Contains(err.Error(), "is used") {
			t.Fatalf("blockdev-del %s: %v", id, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("disk %s was not released by the guest within 2 minutes (last: %v)", id, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	m.freeSlot(id)
}

func (m *Machine) freeSlot(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, used := range m.slots {
		if used == id {
			m.slots[i] = ""
		}
	}
}
