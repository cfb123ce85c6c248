package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// The tags every group the harness creates carries: the reaper finds groups by TagRun and
// judges their age by TagCreated.
const (
	TagRun     = "azl-vmtest-run"
	TagCreated = "azl-vmtest-created" // RFC 3339, UTC
	TagOwner   = "azl-vmtest-owner"
	TagMachine = "azl-vmtest-machine"
)

// DeleteTimeout bounds the deletion of a group (Azure takes minutes to delete a VM and its
// network).
var DeleteTimeout = 20 * time.Minute

// Provisioner creates and deletes the azure target's machines.
type Provisioner struct {
	cfg    Config
	groups *armresources.ResourceGroupsClient
	vms    *armcompute.VirtualMachinesClient
	images *armcompute.ImagesClient
	nsgs   *armnetwork.SecurityGroupsClient
	vnets  *armnetwork.VirtualNetworksClient
	ips    *armnetwork.PublicIPAddressesClient
	nics   *armnetwork.InterfacesClient
	http   *http.Client
	Poll   time.Duration    // between polls of a long-running operation without Retry-After
	Now    func() time.Time // the clock that stamps and ages groups
	Logf   func(format string, args ...any)
}

// New makes a provisioner for cfg. opts is nil in production; tests route it to the SDK's
// fake servers (its Transport). The serial log is fetched with opts' transport too, if any.
func New(cfg Config, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Provisioner, error) {
	res, err := armresources.NewClientFactory(cfg.Subscription, cred, opts)
	if err != nil {
		return nil, err
	}
	comp, err := armcompute.NewClientFactory(cfg.Subscription, cred, opts)
	if err != nil {
		return nil, err
	}
	netw, err := armnetwork.NewClientFactory(cfg.Subscription, cred, opts)
	if err != nil {
		return nil, err
	}
	p := &Provisioner{
		cfg:    cfg,
		groups: res.NewResourceGroupsClient(), vms: comp.NewVirtualMachinesClient(), images: comp.NewImagesClient(),
		nsgs: netw.NewSecurityGroupsClient(), vnets: netw.NewVirtualNetworksClient(),
		ips: netw.NewPublicIPAddressesClient(), nics: netw.NewInterfacesClient(),
		http: &http.Client{Timeout: time.Minute},
		Poll: 5 * time.Second, Now: time.Now,
		Logf: func(string, ...any) {},
	}
	return p, nil
}

// Spec is one machine to create.
type Spec struct {
	RunID      string // NewRunID: names the group and tags it
	Name       string // the machine's name in the run
	HostName   string // the guest's host name (the one the custom data sets too)
	User       string // the admin user
	UserKey    string // its public key, authorized_keys format
	CustomData []byte // cloud-init user-data (holds the pinned host key)
}

// VM is a created machine.
type VM struct {
	Group, Name string
	Address     string // public IP:22
	p           *Provisioner
}

// NewRunID names one run: its time and a random part.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

var groupRe = regexp.MustCompile(`[^A-Za-z0-9_.()-]+`)

// GroupName is the resource group of machine name in run id (Azure allows 90 characters).
func GroupName(run, name string) string {
	g := "vmtest-" + run + "-" + groupRe.ReplaceAllString(name, "-")
	if len(g) > 89 {
		g = g[:89]
	}
	return strings.TrimRight(g, ".")
}

// Create makes the machine's group, network and VM, in that order, and returns once Azure says
// the VM is created (the guest may still be booting: the caller waits for SSH). On any failure
// or cancellation after the group exists, the group is deleted before Create returns (with its
// own bound: ctx may be what ran out), and the error says what failed and how to fix it.
func (p *Provisioner) Create(ctx context.Context, s Spec) (vm *VM, err error) {
	vm = &VM{Group: GroupName(s.RunID, s.Name), Name: "vm", p: p}
	if err := p.createGroup(ctx, vm.Group, s); err != nil {
		err = fmt.Errorf("azure: resource group %s: %w", vm.Group, Explain(err))
		if ctx.Err() != nil {
			// Cancelled in flight: Azure may have made it all the same.
			if derr := vm.Delete(); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := vm.Delete(); derr != nil {
				err = errors.Join(err, derr)
			} else {
				err = fmt.Errorf("%w (resource group %s deleted)", err, vm.Group)
			}
			vm = nil
		}
	}()
	steps := []struct {
		what string
		do   func(context.Context, *VM, Spec) error
		skip bool
	}{
		{"network security group", p.createNSG, false},
		{"virtual network", p.createVNet, false},
		{"public IP address", p.createIP, false},
		{"network interface", p.createNIC, false},
		{"image from the VHD", p.createImage, p.cfg.Image.VHD == ""},
		{"virtual machine", p.createVM, false},
	}
	for _, st := range steps {
		if st.skip {
			continue
		}
		p.Logf("azure: %s: creating the %s", vm.Group, st.what)
		if err := st.do(ctx, vm, s); err != nil {
			return vm, fmt.Errorf("azure: %s: %s: %w", vm.Group, st.what, Explain(err))
		}
	}
	return vm, nil
}

func (p *Provisioner) id(group, provider, kind, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s/%s", p.cfg.Subscription, group, provider, kind, name)
}

func (p *Provisioner) createGroup(ctx context.Context, group string, s Spec) error {
	_, err := p.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{
		Location: &p.cfg.Location,
		Tags: map[string]*string{
			TagRun: to.Ptr(s.RunID), TagCreated: to.Ptr(p.Now().UTC().Format(time.RFC3339)),
			TagOwner: to.Ptr(p.cfg.Owner), TagMachine: to.Ptr(s.Name),
		},
	}, nil)
	return err
}

// done waits for a long-running operation that began (err: its Begin call's error).
func done[T any](ctx context.Context, p *Provisioner, poller *runtime.Poller[T], err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: p.Poll})
}

func (p *Provisioner) createNSG(ctx context.Context, vm *VM, _ Spec) error {
	poller, err := p.nsgs.BeginCreateOrUpdate(ctx, vm.Group, "nsg", armnetwork.SecurityGroup{
		Location: &p.cfg.Location,
		Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: []*armnetwork.SecurityRule{{
			Name: to.Ptr("ssh"),
			Properties: &armnetwork.SecurityRulePropertiesFormat{
				Protocol:                 to.Ptr(armnetwork.SecurityRuleProtocolTCP),
				SourceAddressPrefix:      &p.cfg.SSHSource,
				SourcePortRange:          to.Ptr("*"),
				DestinationAddressPrefix: to.Ptr("*"),
				DestinationPortRange:     to.Ptr("22"),
				Access:                   to.Ptr(armnetwork.SecurityRuleAccessAllow),
				Direction:                to.Ptr(armnetwork.SecurityRuleDirectionInbound),
				Priority:                 to.Ptr[int32](1000),
			},
		}}},
	}, nil)
	_, err = done(ctx, p, poller, err)
	return err
}

func (p *Provisioner) createVNet(ctx context.Context, vm *VM, _ Spec) error {
	poller, err := p.vnets.BeginCreateOrUpdate(ctx, vm.Group, "vnet", armnetwork.VirtualNetwork{
		Location: &p.cfg.Location,
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			Subnets: []*armnetwork.Subnet{{
				Name: to.Ptr("default"),
				Properties: &armnetwork.SubnetPropertiesFormat{
					AddressPrefix:        to.Ptr("10.0.0.0/24"),
					NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: to.Ptr(p.id(vm.Group, "Microsoft.Network", "networkSecurityGroups", "nsg"))},
				},
			}},
		},
	}, nil)
	_, err = done(ctx, p, poller, err)
	return err
}

func (p *Provisioner) createIP(ctx context.Context, vm *VM, _ Spec) error {
	poller, err := p.ips.BeginCreateOrUpdate(ctx, vm.Group, "ip", armnetwork.PublicIPAddress{
		Location:   &p.cfg.Location,
		SKU:        &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)},
	}, nil)
	res, err := done(ctx, p, poller, err)
	if err != nil {
		return err
	}
	if res.Properties == nil || res.Properties.IPAddress == nil || net.ParseIP(*res.Properties.IPAddress) == nil {
		return errors.New("Azure returned no static address")
	}
	vm.Address = net.JoinHostPort(*res.Properties.IPAddress, "22")
	return nil
}

func (p *Provisioner) createNIC(ctx context.Context, vm *VM, _ Spec) error {
	poller, err := p.nics.BeginCreateOrUpdate(ctx, vm.Group, "nic", armnetwork.Interface{
		Location: &p.cfg.Location,
		Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{
			Name: to.Ptr("ipconfig"),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				Subnet:                    &armnetwork.Subnet{ID: to.Ptr(p.id(vm.Group, "Microsoft.Network", "virtualNetworks", "vnet") + "/subnets/default")},
				PublicIPAddress:           &armnetwork.PublicIPAddress{ID: to.Ptr(p.id(vm.Group, "Microsoft.Network", "publicIPAddresses", "ip"))},
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
			},
		}}},
	}, nil)
	_, err = done(ctx, p, poller, err)
	return err
}

// createImage makes a managed image of the VHD (Gen2, generalized Linux).
func (p *Provisioner) createImage(ctx context.Context, vm *VM, _ Spec) error {
	poller, err := p.images.BeginCreateOrUpdate(ctx, vm.Group, "image", armcompute.Image{
		Location: &p.cfg.Location,
		Properties: &armcompute.ImageProperties{
			HyperVGeneration: to.Ptr(armcompute.HyperVGenerationTypesV2),
			StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
				OSType:  to.Ptr(armcompute.OperatingSystemTypesLinux),
				OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
				BlobURI: &p.cfg.Image.VHD,
			}},
		},
	}, nil)
	_, err = done(ctx, p, poller, err)
	return err
}

// imageReference is what the VM boots.
func (p *Provisioner) imageReference(group string) *armcompute.ImageReference {
	img := p.cfg.Image
	switch {
	case img.URN != nil:
		return img.URN
	case strings.HasPrefix(strings.ToLower(img.Gallery), "/sharedgalleries/"):
		return &armcompute.ImageReference{SharedGalleryImageID: &img.Gallery}
	case strings.HasPrefix(strings.ToLower(img.Gallery), "/communitygalleries/"):
		return &armcompute.ImageReference{CommunityGalleryImageID: &img.Gallery}
	case img.Gallery != "":
		return &armcompute.ImageReference{ID: &img.Gallery}
	}
	return &armcompute.ImageReference{ID: to.Ptr(p.id(group, "Microsoft.Compute", "images", "image"))}
}

func (p *Provisioner) createVM(ctx context.Context, vm *VM, s Spec) error {
	props := &armcompute.VirtualMachineProperties{
		HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(p.cfg.Size))},
		StorageProfile: &armcompute.StorageProfile{
			ImageReference: p.imageReference(vm.Group),
			OSDisk: &armcompute.OSDisk{
				CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage),
				DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
			},
		},
		OSProfile: &armcompute.OSProfile{
			ComputerName:  &s.HostName,
			AdminUsername: &s.User,
			CustomData:    to.Ptr(base64.StdEncoding.EncodeToString(s.CustomData)),
			LinuxConfiguration: &armcompute.LinuxConfiguration{
				DisablePasswordAuthentication: to.Ptr(true),
				SSH: &armcompute.SSHConfiguration{PublicKeys: []*armcompute.SSHPublicKey{{
					Path: to.Ptr("/home/" + s.User + "/.ssh/authorized_keys"), KeyData: &s.UserKey,
				}}},
			},
		},
		NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{
			ID:         to.Ptr(p.id(vm.Group, "Microsoft.Network", "networkInterfaces", "nic")),
			Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(true)},
		}}},
		// Boot diagnostics with Azure's managed storage: the serial log becomes an artifact.
		DiagnosticsProfile: &armcompute.DiagnosticsProfile{BootDiagnostics: &armcompute.BootDiagnostics{Enabled: to.Ptr(true)}},
	}
	if p.cfg.DiskController != "" {
		props.StorageProfile.DiskControllerType = to.Ptr(armcompute.DiskControllerTypes(p.cfg.DiskController))
	}
	if p.cfg.Security == SecurityTrusted {
		props.SecurityProfile = &armcompute.SecurityProfile{
			SecurityType: to.Ptr(armcompute.SecurityTypesTrustedLaunch),
			UefiSettings: &armcompute.UefiSettings{SecureBootEnabled: to.Ptr(true), VTpmEnabled: to.Ptr(true)},
		}
	}
	poller, err := p.vms.BeginCreateOrUpdate(ctx, vm.Group, vm.Name, armcompute.VirtualMachine{Location: &p.cfg.Location, Properties: props}, nil)
	_, err = done(ctx, p, poller, err)
	return err
}

// SerialLog reads the VM's serial console log through boot diagnostics.
func (vm *VM) SerialLog(ctx context.Context) ([]byte, error) {
	res, err := vm.p.vms.RetrieveBootDiagnosticsData(ctx, vm.Group, vm.Name, &armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataOptions{SasURIExpirationTimeInMinutes: to.Ptr[int32](10)})
	if err != nil {
		return nil, fmt.Errorf("azure: %s: boot diagnostics: %w", vm.Group, Explain(err))
	}
	if res.SerialConsoleLogBlobURI == nil {
		return nil, fmt.Errorf("azure: %s: boot diagnostics gave no serial log", vm.Group)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *res.SerialConsoleLogBlobURI, nil)
	if err != nil {
		return nil, err
	}
	resp, err := vm.p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("azure: %s: serial log: %w", vm.Group, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("azure: %s: serial log: %s", vm.Group, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// Delete deletes the VM's resource group and waits (DeleteTimeout) until Azure says it is
// gone. It uses its own context: it runs when the test's has run out, or on Ctrl-C.
func (vm *VM) Delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), DeleteTimeout)
	defer cancel()
	return vm.p.deleteGroup(ctx, vm.Group)
}

func (p *Provisioner) deleteGroup(ctx context.Context, group string) error {
	p.Logf("azure: deleting resource group %s", group)
	poller, err := p.groups.BeginDelete(ctx, group, &armresources.ResourceGroupsClientBeginDeleteOptions{
		ForceDeletionTypes: to.Ptr("Microsoft.Compute/virtualMachines"),
	})
	_, err = done(ctx, p, poller, err)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("azure: resource group %s NOT deleted (%w): delete it with `az group delete -n %s`, or `vmtest azure reap` deletes every group a run left", group, Explain(err), group)
	}
	return nil
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.ErrorCode == "ResourceGroupNotFound")
}
