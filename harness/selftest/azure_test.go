package selftest

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness"
	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/azure/azuretest"
	"github.com/azl-vmtest/azl-vmtest/suites/boot"
)

// TestAzureTargetRunsOnAFakeCloud runs the azure target end to end with Azure replaced by the
// SDK's fake servers and the VM played by a local QEMU stand-in seeded with exactly the custom
// data the target sent: real cloud-init has to install the pinned host key and the login key
// from it, or the target cannot log in. Then the boot suite's checks run through the target,
// and closing the machine deletes its resource group.
func TestAzureTargetRunsOnAFakeCloud(t *testing.T) {
	azuretest.SetEnv(t)
	// The VM is a QEMU stand-in booting for real (its seed is the custom data): under TCG and
	// beside other VMs that took 9 minutes here, near the target's 10-minute default.
	t.Setenv("VMTEST_BOOT_TIMEOUT", "25m")

	cfg, err := harness.ConfigFromEnv()
	require.NoError(t, err)
	boots := func() int { // the run's count of real boots of the player (artifacts' vm-starts.tsv)
		b, _ := os.ReadFile(filepath.Join(cfg.Artifacts, "vm-starts.tsv"))
		return strings.Count(string(b), "boot\t"+cfg.Arch.Name+"\tazure-player\t")
	}
	bootsBefore := boots()

	cloud := azuretest.New()
	var (
		mu     sync.Mutex
		player *harness.Machine
	)
	cloud.OnVM = func(group string, vm armcompute.VirtualMachine) error {
		ud, err := base64.StdEncoding.DecodeString(*vm.Properties.OSProfile.CustomData)
		if err != nil {
			return err
		}
		p, err := harness.Open(context.Background(), "azure-player", harness.WithForeignUserData(ud))
		if err != nil {
			return err
		}
		mu.Lock()
		player = p
		mu.Unlock()
		t.Cleanup(p.Close)
		return nil
	}
	defer harness.UseAzureCloud(harness.AzureCloud{
		ClientOptions: cloud.ClientOptions(), Credential: &azfake.TokenCredential{},
		Dial: func(*azure.VM) string {
			mu.Lock()
			defer mu.Unlock()
			if player == nil {
				return "127.0.0.1:1"
			}
			return "127.0.0.1:" + strconv.Itoa(player.HostPort(22))
		},
	})()

	m, err := harness.Open(t.Context(), "azure-run")
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()
	groups := cloud.Groups()
	require.Len(t, groups, 1)
	var group string
	for g := range groups {
		group = g
	}
	assert.True(t, strings.HasSuffix(group, "-azure-run"), group)
	assert.Equal(t, "standin", m.Profile().Name, "profile detected from os-release through the target")
	assert.True(t, m.Has(harness.PowerSeed))
	assert.False(t, m.Has(harness.PowerQMP))
	assert.Equal(t, "azl-vmtest-azure-run", strings.TrimSpace(m.MustRun(t, "hostname")), "the custom data's hostname")
	assert.Equal(t, bootsBefore+1, boots(), "the player's real boot is counted among the run's boots")

	t.Run("boot checks", func(t *testing.T) { harness.Check(t, m, boot.Checks) })

	m.Close()
	closed = true
	assert.Empty(t, cloud.Groups(), "closing the machine deletes its group")
	calls := cloud.Calls()
	assert.Equal(t, "delete-group "+group, calls[len(calls)-1])
}
