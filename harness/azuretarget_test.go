package harness

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/azure/azuretest"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// azureEnv is a complete azure target configuration (no credentials).
func azureEnv(t *testing.T) {
	azuretest.SetEnv(t)
	t.Setenv("VMTEST_ARTIFACTS", t.TempDir())
}

// With the target configured but no credentials at all, the first machine fails in under two
// seconds, naming what would do; nothing is created.
func TestAzureTargetWithoutCredentialsFailsFast(t *testing.T) {
	azureEnv(t)
	for _, v := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(v, "")
	}
	t.Setenv("PATH", t.TempDir()) // no az, azd or pwsh
	defer UseAzureCloud(AzureCloud{})()
	start := time.Now()
	m, err := Open(context.Background(), "nocreds")
	require.Error(t, err)
	assert.Nil(t, m)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Contains(t, err.Error(), "no usable Azure credentials: sign in with `az login`")
}

// fakeAzure routes the azure target to a fake subscription and dials addr for its VMs.
func fakeAzure(t *testing.T, addr string) *azuretest.Cloud {
	cloud := azuretest.New()
	t.Cleanup(UseAzureCloud(AzureCloud{
		ClientOptions: cloud.ClientOptions(), Credential: &azfake.TokenCredential{},
		Dial: func(*azure.VM) string { return addr },
	}))
	return cloud
}

// A VM that never answers SSH: the wait is bounded by the boot timeout, the error names the
// target, and the group is deleted before Open returns. (Open is for tools; for a test the
// machine comes back with the error, for its artifacts: see the next test.)
func TestAzureTargetDeletesTheGroupWhenTheVMNeverAnswers(t *testing.T) {
	azureEnv(t)
	t.Setenv("VMTEST_BOOT_TIMEOUT", "3s")
	l, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks SSH
	require.NoError(t, err)
	defer l.Close()
	cloud := fakeAzure(t, l.Addr().String())
	start := time.Now()
	m, err := Open(context.Background(), "silent")
	require.Error(t, err)
	assert.Nil(t, m)
	assert.Less(t, time.Since(start), 20*time.Second)
	assert.Contains(t, err.Error(), "target azure (westus3, MicrosoftCBLMariner:azure-linux-3:azure-linux-3-gen2:latest, Standard_D2s_v5)")
	calls := cloud.Calls()
	require.NotEmpty(t, calls)
	assert.Regexp(t, `^delete-group vmtest-\d{8}-\d{6}-[0-9a-f]{6}-silent$`, calls[len(calls)-1])
	assert.Empty(t, cloud.Groups(), "nothing left in the subscription")
}

// A test whose Azure VM never answered gets its artifacts (the serial log tells why) before the
// group is deleted.
func TestAzureTargetKeepsAnUnansweringVMForItsArtifacts(t *testing.T) {
	azureEnv(t)
	t.Setenv("VMTEST_BOOT_TIMEOUT", "2s")
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n"))
	}))
	defer blob.Close()
	cloud := fakeAzure(t, "127.0.0.1:1") // nothing listens there
	cloud.SerialLogURL = blob.URL + "/serial.log?sig=x"
	cfg, err := ConfigFromEnv()
	require.NoError(t, err)
	m, err := start(context.Background(), cfg, "unanswered", t.Logf)
	require.Error(t, err)
	require.NotNil(t, m, "the machine comes back with the error, for its artifacts")
	dst := t.TempDir()
	_ = m.saveArtifacts(dst)
	b, err := os.ReadFile(filepath.Join(dst, "console.log"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "Unable to mount root fs")
	assert.Len(t, cloud.Groups(), 1, "not deleted before its artifacts are taken")
	m.Close()
	assert.Empty(t, cloud.Groups(), "Close deletes it")
}

// Close while the VM is being created (what Ctrl-C does to every live machine): provisioning
// is cancelled, and Close returns only once the group is deleted.
func TestAzureTargetCloseDuringCreateDeletesTheGroup(t *testing.T) {
	azureEnv(t)
	cloud := fakeAzure(t, "127.0.0.1:1")
	cloud.Block = azuretest.OpVM
	closed := make(chan int)
	go func() {
		<-cloud.Blocked()
		liveMu.Lock()
		var all []*Machine
		for m := range live {
			all = append(all, m)
		}
		liveMu.Unlock()
		for _, m := range all {
			m.Close()
		}
		closed <- len(cloud.Groups())
	}()
	_, err := Open(context.Background(), "interrupted")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, <-closed, "groups left when Close returned")
}

func TestAzureTargetPowers(t *testing.T) {
	m := &Machine{cfg: Config{Target: Target{Kind: TargetAzure, Azure: &azure.Config{}}}}
	for _, p := range []Power{PowerConsole, PowerQMP, PowerHostNetwork, PowerVirtHardware, PowerAccelerator, PowerSavedState} {
		assert.False(t, m.Has(p), p)
	}
	assert.True(t, m.Has(PowerSeed), "the custom data is the harness's user-data")
}

// A failing test's artifacts hold the Azure VM's serial log (boot diagnostics) and its group.
func TestAzureTargetArtifactsHoldTheSerialLog(t *testing.T) {
	azureEnv(t)
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("[    0.000000] Linux version 6.6.57.1-azl3\r\nazl login: "))
	}))
	defer blob.Close()
	cloud := fakeAzure(t, "127.0.0.1:1")
	cloud.SerialLogURL = blob.URL + "/serial.log?sig=x"
	cfg, err := ConfigFromEnv()
	require.NoError(t, err)
	p, _, run, err := azureProvisioner(context.Background(), *cfg.Target.Azure, t.Logf)
	require.NoError(t, err)
	vm, err := p.Create(context.Background(), azure.Spec{RunID: run, Name: "art", User: "u", UserKey: "k"})
	require.NoError(t, err)
	m := &Machine{cfg: cfg, name: "art", dir: t.TempDir(), cloud: vm, logf: t.Logf, sshCfg: ssh.Config{Addr: vm.Address}}
	dst := t.TempDir()
	require.NoError(t, m.saveArtifacts(dst))
	b, err := os.ReadFile(filepath.Join(dst, "console.log"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "Linux version 6.6.57.1-azl3")
	b, err = os.ReadFile(filepath.Join(dst, "azure.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "resource group "+vm.Group)
	m.deleteCloud()
	assert.Empty(t, cloud.Groups())
}
