package azure

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/azure/azuretest"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const urn = "MicrosoftCBLMariner:azure-linux-3:azure-linux-3-gen2:latest"

var base = []string{"AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001", "VMTEST_AZURE_LOCATION", "westus3", "VMTEST_AZURE_IMAGE", urn}

func TestFromEnvNamesEveryMistake(t *testing.T) {
	_, err := FromEnv(env())
	require.Error(t, err)
	for _, v := range []string{"AZURE_SUBSCRIPTION_ID", "VMTEST_AZURE_LOCATION", "VMTEST_AZURE_IMAGE"} {
		assert.Contains(t, err.Error(), v)
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"image", []string{"VMTEST_AZURE_IMAGE", "ubuntu"}, "VMTEST_AZURE_IMAGE=\"ubuntu\": give a marketplace URN"},
		{"vhd not a blob", []string{"VMTEST_AZURE_IMAGE", "https://example.com/x.vhd"}, "VMTEST_AZURE_IMAGE"},
		{"location", []string{"VMTEST_AZURE_LOCATION", "West US 3"}, "VMTEST_AZURE_LOCATION=\"west us 3\""},
		{"size", []string{"VMTEST_AZURE_SIZE", "D2s v5"}, "VMTEST_AZURE_SIZE"},
		{"security", []string{"VMTEST_AZURE_SECURITY", "Confidential"}, "give TrustedLaunch"},
		{"vhd trusted", []string{"VMTEST_AZURE_IMAGE", "https://acct.blob.core.windows.net/vhds/azl.vhd", "VMTEST_AZURE_SECURITY", "TrustedLaunch"}, "cannot boot with Trusted Launch"},
		{"controller", []string{"VMTEST_AZURE_DISK_CONTROLLER", "IDE"}, "give SCSI or NVMe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(env(append(append([]string{}, base...), tc.kv...)...))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(env(append(append([]string{}, base...), "USER", "alice", "VMTEST_AZURE_DISK_CONTROLLER", "nvme")...))
	require.NoError(t, err)
	assert.Equal(t, DefaultSize, c.Size)
	assert.Equal(t, SecurityTrusted, c.Security)
	assert.Equal(t, "NVMe", c.DiskController)
	assert.Equal(t, "*", c.SSHSource)
	assert.Equal(t, "alice", c.Owner)
	assert.Equal(t, urn, c.Image.String())

	c, err = FromEnv(env(append(append([]string{}, base...), "VMTEST_AZURE_IMAGE", "https://acct.blob.core.windows.net/vhds/azl.vhd")...))
	require.NoError(t, err)
	assert.Equal(t, SecurityStandard, c.Security, "a VHD becomes a managed image: Standard security")
	assert.Equal(t, "unknown", c.Owner)
}

func TestParseImage(t *testing.T) {
	for _, s := range []string{
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/azl4",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/azl4/versions/4.0.1",
		"/SharedGalleries/abc-123/Images/azl4/Versions/latest",
		"/CommunityGalleries/azl-1234/Images/azl4/Versions/4.0.1",
	} {
		img, err := ParseImage(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, img.Gallery)
	}
	img, err := ParseImage(urn)
	require.NoError(t, err)
	assert.Equal(t, "azure-linux-3-gen2", *img.URN.SKU)
	for _, bad := range []string{"", "a:b:c", "a:b:c:d:e", "/subscriptions/s/images/x", "https://acct.blob.core.windows.net/x.vhd", "http://acct.blob.core.windows.net/c/x.vhd"} {
		_, err := ParseImage(bad)
		assert.Error(t, err, bad)
	}
}

// provisioner is one against cloud, with the test's clock and fast polling.
func provisioner(t *testing.T, cloud *azuretest.Cloud, kv ...string) *Provisioner {
	t.Helper()
	cfg, err := FromEnv(env(append(append([]string{}, base...), kv...)...))
	require.NoError(t, err)
	p, err := New(cfg, &azfake.TokenCredential{}, cloud.ClientOptions())
	require.NoError(t, err)
	p.Poll, p.Now = time.Millisecond, func() time.Time { return now }
	return p
}

var spec = Spec{RunID: "20261128-120000-abcdef", Name: "suites_boot", HostName: "azl-vmtest-suites-boot", User: "azlvmtest", UserKey: "ecdsa-sha2-nistp256 AAAA user", CustomData: []byte("#cloud-config\nssh_keys: {}\n")}

const group = "vmtest-20261128-120000-abcdef-suites_boot"

func TestCreateMakesTheMachineInOrder(t *testing.T) {
	cloud := azuretest.New()
	p := provisioner(t, cloud, "VMTEST_AZURE_OWNER", "pipeline-42", "VMTEST_AZURE_SSH_SOURCE", "198.51.100.0/24")
	vm, err := p.Create(context.Background(), spec)
	require.NoError(t, err)
	assert.Equal(t, group, vm.Group)
	assert.Equal(t, "203.0.113.7:22", vm.Address)
	assert.Equal(t, []string{"create-group " + group, "create-nsg " + group, "create-vnet " + group, "create-ip " + group, "create-nic " + group, "create-vm " + group}, cloud.Calls())

	assert.Equal(t, map[string]string{TagRun: spec.RunID, TagCreated: "2026-11-28T12:00:00Z", TagOwner: "pipeline-42", TagMachine: "suites_boot"}, cloud.Groups()[group])

	nsg, _ := cloud.NSG(group)
	rule := nsg.Properties.SecurityRules[0].Properties
	assert.Equal(t, "22", *rule.DestinationPortRange)
	assert.Equal(t, "198.51.100.0/24", *rule.SourceAddressPrefix)

	v, ok := cloud.VM(group)
	require.True(t, ok)
	cd, err := base64.StdEncoding.DecodeString(*v.Properties.OSProfile.CustomData)
	require.NoError(t, err)
	assert.Equal(t, string(spec.CustomData), string(cd), "custom data: the harness's cloud-init user-data")
	assert.Equal(t, "azlvmtest", *v.Properties.OSProfile.AdminUsername)
	assert.True(t, *v.Properties.OSProfile.LinuxConfiguration.DisablePasswordAuthentication)
	key := v.Properties.OSProfile.LinuxConfiguration.SSH.PublicKeys[0]
	assert.Equal(t, spec.UserKey, *key.KeyData)
	assert.Equal(t, "/home/azlvmtest/.ssh/authorized_keys", *key.Path)
	assert.Equal(t, "azl-vmtest-suites-boot", *v.Properties.OSProfile.ComputerName)
	assert.Equal(t, "MicrosoftCBLMariner", *v.Properties.StorageProfile.ImageReference.Publisher)
	assert.Equal(t, armcompute.DiskDeleteOptionTypesDelete, *v.Properties.StorageProfile.OSDisk.DeleteOption)
	assert.Nil(t, v.Properties.StorageProfile.DiskControllerType)
	assert.True(t, *v.Properties.DiagnosticsProfile.BootDiagnostics.Enabled, "boot diagnostics: the serial log")
	assert.Equal(t, armcompute.SecurityTypesTrustedLaunch, *v.Properties.SecurityProfile.SecurityType)
	assert.True(t, *v.Properties.SecurityProfile.UefiSettings.SecureBootEnabled)
	assert.True(t, *v.Properties.SecurityProfile.UefiSettings.VTpmEnabled)
	assert.Equal(t, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/"+group+"/providers/Microsoft.Network/networkInterfaces/nic", *v.Properties.NetworkProfile.NetworkInterfaces[0].ID)

	require.NoError(t, vm.Delete())
	assert.Equal(t, "delete-group "+group, cloud.Calls()[len(cloud.Calls())-1])
	assert.Empty(t, cloud.Groups())
}

func TestCreateFromEachKindOfImage(t *testing.T) {
	gallery := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/azl4/versions/4.0.1"
	shared := "/SharedGalleries/abc/Images/azl4/Versions/latest"
	community := "/CommunityGalleries/azl/Images/azl4/Versions/latest"
	vhd := "https://acct.blob.core.windows.net/vhds/azl.vhd"
	for _, tc := range []struct {
		image string
		check func(t *testing.T, ref *armcompute.ImageReference)
	}{
		{gallery, func(t *testing.T, ref *armcompute.ImageReference) { assert.Equal(t, gallery, *ref.ID) }},
		{shared, func(t *testing.T, ref *armcompute.ImageReference) { assert.Equal(t, shared, *ref.SharedGalleryImageID) }},
		{community, func(t *testing.T, ref *armcompute.ImageReference) {
			assert.Equal(t, community, *ref.CommunityGalleryImageID)
		}},
		{vhd, func(t *testing.T, ref *armcompute.ImageReference) {
			assert.Equal(t, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/"+group+"/providers/Microsoft.Compute/images/image", *ref.ID)
		}},
	} {
		t.Run(tc.image, func(t *testing.T) {
			cloud := azuretest.New()
			p := provisioner(t, cloud, "VMTEST_AZURE_IMAGE", tc.image, "VMTEST_AZURE_DISK_CONTROLLER", "NVMe")
			_, err := p.Create(context.Background(), spec)
			require.NoError(t, err)
			v, _ := cloud.VM(group)
			tc.check(t, v.Properties.StorageProfile.ImageReference)
			assert.Equal(t, armcompute.DiskControllerTypesNVMe, *v.Properties.StorageProfile.DiskControllerType)
			img, made := cloud.Image(group)
			assert.Equal(t, tc.image == vhd, made, "a managed image is made for a VHD only")
			if tc.image == vhd {
				assert.Equal(t, vhd, *img.Properties.StorageProfile.OSDisk.BlobURI)
				assert.Equal(t, armcompute.HyperVGenerationTypesV2, *img.Properties.HyperVGeneration)
				assert.Nil(t, v.Properties.SecurityProfile, "a managed image boots Standard")
				assert.Equal(t, "create-image "+group, cloud.Calls()[5])
			}
		})
	}
}

// Every failure after the group exists deletes the group before Create returns, and the
// error says which step failed and what to do.
func TestCreateFailureDeletesTheGroup(t *testing.T) {
	for _, tc := range []struct{ op, code, want string }{
		{azuretest.OpNSG, "AuthorizationFailed", "Contributor role"},
		{azuretest.OpVNet, "InternalServerError", "virtual network: InternalServerError"},
		{azuretest.OpIP, "QuotaExceeded", "quota"},
		{azuretest.OpNIC, "Conflict", "network interface: Conflict"},
		{azuretest.OpImage, "InvalidBlobUri", "VHD cannot be read"},
		{azuretest.OpVM, "OperationNotAllowed", "quota"},
		{azuretest.OpVM, "PlatformImageNotFound", "VMTEST_AZURE_IMAGE names no image"},
		{azuretest.OpVM, "SkuNotAvailable", "no capacity"},
		{azuretest.OpVM, "MarketplacePurchaseEligibilityFailed", "terms accept"},
	} {
		t.Run(tc.op+"/"+tc.code, func(t *testing.T) {
			cloud := azuretest.New()
			cloud.Fail[tc.op] = tc.code
			p := provisioner(t, cloud, "VMTEST_AZURE_IMAGE", "https://acct.blob.core.windows.net/vhds/azl.vhd")
			vm, err := p.Create(context.Background(), spec)
			require.Error(t, err)
			assert.Nil(t, vm)
			assert.Contains(t, err.Error(), tc.code)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "(resource group "+group+" deleted)")
			calls := cloud.Calls()
			assert.Equal(t, "delete-group "+group, calls[len(calls)-1])
			assert.Empty(t, cloud.Groups(), "nothing left behind")
		})
	}
	t.Run("group", func(t *testing.T) {
		cloud := azuretest.New()
		cloud.Fail[azuretest.OpGroup] = "LocationNotAvailableForResourceGroup"
		_, err := provisioner(t, cloud).Create(context.Background(), spec)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "VMTEST_AZURE_LOCATION is not a region")
		assert.Equal(t, []string{"create-group " + group}, cloud.Calls(), "no group: nothing to delete")
	})
}

// A cancelled run (Ctrl-C, the test's deadline) still deletes what it created.
func TestCreateCancelledDeletesTheGroup(t *testing.T) {
	cloud := azuretest.New()
	cloud.Block = azuretest.OpVM
	p := provisioner(t, cloud)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-cloud.Blocked(); cancel() }()
	_, err := p.Create(ctx, spec)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	assert.Contains(t, err.Error(), "deleted")
	assert.Empty(t, cloud.Groups())
}

// Cancelled while the group is being created: Azure may have made it, so it is deleted too.
func TestCreateCancelledWhileMakingTheGroupDeletesIt(t *testing.T) {
	cloud := azuretest.New()
	cloud.Block = azuretest.OpGroup
	p := provisioner(t, cloud)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-cloud.Blocked(); cancel() }()
	_, err := p.Create(ctx, spec)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"create-group " + group, "delete-group " + group}, cloud.Calls())
}

func TestDeleteFailureNamesTheGroupAndTheReaper(t *testing.T) {
	cloud := azuretest.New()
	p := provisioner(t, cloud)
	vm, err := p.Create(context.Background(), spec)
	require.NoError(t, err)
	cloud.Fail[azuretest.OpDelete] = "ScopeLocked"
	err = vm.Delete()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "resource group "+group+" NOT deleted")
	assert.Contains(t, err.Error(), "az group delete -n "+group)
	assert.Contains(t, err.Error(), "vmtest azure reap")

	// A group already gone is not an error.
	delete(cloud.Fail, azuretest.OpDelete)
	require.NoError(t, vm.Delete())
	require.NoError(t, vm.Delete())
}

func TestReapDeletesOnlyOldTaggedGroups(t *testing.T) {
	cloud := azuretest.New()
	old := map[string]string{TagRun: "r1", TagCreated: now.Add(-7 * time.Hour).Format(time.RFC3339), TagOwner: "alice", TagMachine: "suites_boot"}
	young := map[string]string{TagRun: "r2", TagCreated: now.Add(-time.Hour).Format(time.RFC3339), TagOwner: "bob", TagMachine: "suites_storage"}
	garbled := map[string]string{TagRun: "r3", TagCreated: "yesterday"}
	cloud.AddGroup("vmtest-r1-suites_boot", old)
	cloud.AddGroup("vmtest-r2-suites_storage", young)
	cloud.AddGroup("vmtest-r3-x", garbled)
	p := provisioner(t, cloud)

	found, err := p.Reap(context.Background(), 6*time.Hour, true)
	require.NoError(t, err)
	require.Len(t, found, 3)
	assert.Len(t, cloud.Groups(), 3, "a dry run deletes nothing")

	found, err = p.Reap(context.Background(), 6*time.Hour, false)
	require.NoError(t, err)
	assert.Equal(t, "tagName eq 'azl-vmtest-run'", cloud.ListFilter())
	require.Len(t, found, 3)
	assert.True(t, found[0].Deleted, found[0].String())
	assert.Equal(t, 7*time.Hour, found[0].Age)
	assert.Contains(t, found[0].String(), "vmtest-r1-suites_boot (run r1, owner alice, machine suites_boot, age 7h0m0s): deleted")
	assert.False(t, found[1].Deleted)
	assert.Contains(t, found[1].String(), "younger than 6h0m0s")
	assert.False(t, found[2].Deleted)
	assert.Contains(t, found[2].String(), `tag azl-vmtest-created="yesterday" is not a time`)
	assert.ElementsMatch(t, []string{"vmtest-r2-suites_storage", "vmtest-r3-x"}, keys(cloud.Groups()))

	cloud.Fail[azuretest.OpList] = "AuthorizationFailed"
	_, err = p.Reap(context.Background(), 0, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Contributor role")
}

func keys(m map[string]map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSerialLogThroughBootDiagnostics(t *testing.T) {
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.RawQuery, "sig=") {
			http.Error(w, "no SAS", http.StatusForbidden)
			return
		}
		w.Write([]byte("[    0.000000] Linux version 6.6\nlogin: "))
	}))
	defer blob.Close()
	cloud := azuretest.New()
	cloud.SerialLogURL = blob.URL + "/bootdiagnostics/vm.serialconsole.log?sig=x"
	p := provisioner(t, cloud)
	vm, err := p.Create(context.Background(), spec)
	require.NoError(t, err)
	log, err := vm.SerialLog(context.Background())
	require.NoError(t, err)
	assert.Contains(t, string(log), "Linux version 6.6")

	cloud.SerialLogURL = blob.URL + "/nosas"
	_, err = vm.SerialLog(context.Background())
	require.ErrorContains(t, err, "403")
}

func TestGroupNameFitsAzure(t *testing.T) {
	g := GroupName("20261128-120000-abcdef", strings.Repeat("TestAVeryLongName/sub test", 5))
	assert.LessOrEqual(t, len(g), 90)
	assert.Regexp(t, `^vmtest-20261128-120000-abcdef-[A-Za-z0-9_.()-]+$`, g)
	assert.Regexp(t, `^\d{8}-\d{6}-[0-9a-f]{6}$`, NewRunID(now))
}

// No credentials at all (no environment, no az, no managed identity): fails at once, naming
// what would do.
func TestCredentialMissingFailsFast(t *testing.T) {
	for _, v := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(v, "")
	}
	t.Setenv("PATH", t.TempDir()) // no az, azd or pwsh
	start := time.Now()
	_, err := Credential(context.Background())
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Contains(t, err.Error(), "az login")
	assert.Contains(t, err.Error(), "AZURE_CLIENT_SECRET")
}
