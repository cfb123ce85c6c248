package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/cloudinit"
	"github.com/azl-vmtest/azl-vmtest/harness/ssh"
)

// TargetAzure provisions each machine as an Azure VM in a resource group of its own, and
// deletes the group when the machine is closed (see harness/azure).
const TargetAzure = "azure"

// AzureCloud replaces Azure for tests of the azure target: the SDK clients' options (routed
// to the SDK's fake servers: azure/azuretest), the credential, and the address dialled for a
// created VM (a fake's VM is played by a machine elsewhere). Nil fields keep the real ones.
type AzureCloud struct {
	ClientOptions *arm.ClientOptions
	Credential    azcore.TokenCredential
	Dial          func(vm *azure.VM) string
}

var (
	azureMu    sync.Mutex
	azureCloud AzureCloud
	azureCred  azcore.TokenCredential // the first machine's, checked; shared by the run
	azureRun   string                 // the run's ID: every group of this process carries it
)

// UseAzureCloud makes the azure target use c until the returned function is called.
func UseAzureCloud(c AzureCloud) (restore func()) {
	azureMu.Lock()
	old, oldCred := azureCloud, azureCred
	azureCloud, azureCred = c, c.Credential
	azureMu.Unlock()
	return func() {
		azureMu.Lock()
		azureCloud, azureCred = old, oldCred
		azureMu.Unlock()
	}
}

// azureProvisioner is the run's provisioner, with credentials checked once.
func azureProvisioner(ctx context.Context, cfg azure.Config, logf func(string, ...any)) (*azure.Provisioner, AzureCloud, string, error) {
	azureMu.Lock()
	defer azureMu.Unlock()
	if azureCred == nil {
		cred, err := azure.Credential(ctx)
		if err != nil {
			return nil, azureCloud, "", err
		}
		azureCred = cred
	}
	if azureRun == "" {
		azureRun = azure.NewRunID(time.Now())
	}
	p, err := azure.New(cfg, azureCred, azureCloud.ClientOptions)
	if err != nil {
		return nil, azureCloud, "", err
	}
	p.Logf = logf
	return p, azureCloud, azureRun, nil
}

// provision creates the machine as an Azure VM whose custom data is the harness's cloud-init
// user-data (the test user's key, the pinned host key), then reaches it over SSH like the ssh
// target. On any failure the VM's group is deleted: by Create if the VM was never made; else
// the machine is returned with the error, for its artifacts (the serial log of a VM that never
// answered) to be taken before Close deletes it, as a QEMU machine's are.
func provision(ctx context.Context, cfg Config, name string, logf func(string, ...any)) (*Machine, error) {
	dir, err := newPrivateDir(name)
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, name: name, dir: dir, logf: logf, started: time.Now()}
	pctx := m.beginStart(ctx)
	register(m) // from now on Ctrl-C cancels the provisioning and deletes what it made
	m, err = m.provision(pctx, cfg, name)
	m.starting.Done()
	if err != nil && m.azureVM() == nil {
		m.Close()
		return nil, err
	}
	return m, err
}

// azureVM is the machine's Azure VM, nil if none (yet, or any more).
func (m *Machine) azureVM() *azure.VM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cloud
}

func (m *Machine) provision(ctx context.Context, cfg Config, name string) (*Machine, error) {
	var err error
	if m.userKey, err = cloudinit.NewKeyPair(cfg.User + "@azl-vmtest"); err != nil {
		return m, err
	}
	if m.hostKey, err = cloudinit.NewKeyPair("azl-vmtest-host"); err != nil {
		return m, err
	}
	seed := &cloudinit.Seed{
		Hostname: hostname(name), User: cfg.User, UserKey: m.userKey, HostKey: m.hostKey,
		WriteFiles: cfg.WriteFiles, BootCmd: cfg.BootCmd, RunCmd: cfg.RunCmd, Extra: cfg.Extra,
	}
	if m.userData, err = seed.UserData(); err != nil {
		return m, err
	}
	p, cloud, run, err := azureProvisioner(ctx, *cfg.Target.Azure, m.log)
	if err != nil {
		return m, err
	}
	vm, err := p.Create(ctx, azure.Spec{RunID: run, Name: name, HostName: seed.Hostname, User: cfg.User, UserKey: m.userKey.PublicLine, CustomData: m.userData})
	if err != nil {
		return m, err
	}
	m.mu.Lock()
	m.cloud = vm
	m.mu.Unlock()
	addr := vm.Address
	if cloud.Dial != nil {
		addr = cloud.Dial(vm)
	}
	m.log("vm %s: Azure VM created in %.0fs: resource group %s, %s", name, time.Since(m.started).Seconds(), vm.Group, addr)
	m.sshCfg = ssh.Config{Addr: addr, User: cfg.User, Signer: m.userKey.Signer, HostKey: m.hostKey.Signer.PublicKey()}
	if cfg.BootTimeout == 0 {
		m.cfg.BootTimeout = 10 * time.Minute // an Azure VM answers SSH 1-3 minutes after creation
	}
	return m, m.attach(ctx, m.cfg.BootTimeout)
}

// deleteCloud deletes the machine's Azure resource group, if it has one.
func (m *Machine) deleteCloud() {
	m.mu.Lock()
	vm := m.cloud
	m.cloud = nil
	m.mu.Unlock()
	if vm == nil {
		return
	}
	if err := vm.Delete(); err != nil {
		fmt.Fprintf(os.Stderr, "azl-vmtest: vm %s: %v\n", m.name, err)
		return
	}
	m.log("vm %s: resource group %s deleted", m.name, vm.Group)
}

// serialLog is the Azure VM's serial console log through boot diagnostics ("" if none).
func (m *Machine) serialLog(ctx context.Context) (string, error) {
	vm := m.azureVM()
	if vm == nil {
		return "", nil
	}
	b, err := vm.SerialLog(ctx)
	return strings.ToValidUTF8(string(b), "?"), err
}
