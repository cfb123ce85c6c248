// Package azuretest is a fake Azure subscription for tests of the azure target, built on the
// fake servers the Azure SDK for Go ships in its arm* modules (fake.ServerFactory): requests go
// through the real clients, serialisation and pollers, and only the service behind them is
// replaced. It remembers groups and what was created in them, records every operation in
// order, and fails or blocks the operations a test names.
package azuretest

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	computefake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	networkfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	resourcesfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/fake"
)

// Operations, as Calls names them ("<op> <group>") and Fail and Block take them.
const (
	OpGroup  = "create-group"
	OpNSG    = "create-nsg"
	OpVNet   = "create-vnet"
	OpIP     = "create-ip"
	OpNIC    = "create-nic"
	OpImage  = "create-image"
	OpVM     = "create-vm"
	OpDelete = "delete-group"
	OpList   = "list-groups"
	OpSerial = "boot-diagnostics"
)

// Cloud is one fake subscription.
type Cloud struct {
	// IP is the public address every public IP gets (default 203.0.113.7).
	IP string
	// Fail makes an operation answer with an Azure error code (HTTP 409, or 403 for
	// authorization codes); Block makes it wait until its request is cancelled.
	Fail  map[string]string
	Block string
	// SerialLogURL is what boot diagnostics returns as the serial log's blob URL.
	SerialLogURL string
	// OnVM is called when a VM is created, with its group and parameters (e.g. to start a
	// local machine that plays it).
	OnVM func(group string, vm armcompute.VirtualMachine) error

	mu         sync.Mutex
	calls      []string
	groups     map[string]armresources.ResourceGroup
	vms        map[string]armcompute.VirtualMachine
	images     map[string]armcompute.Image
	nsgs       map[string]armnetwork.SecurityGroup
	listFilter string
	blocked    chan struct{}
}

// New is an empty subscription.
func New() *Cloud {
	return &Cloud{
		IP: "203.0.113.7", Fail: map[string]string{},
		groups: map[string]armresources.ResourceGroup{}, vms: map[string]armcompute.VirtualMachine{},
		images: map[string]armcompute.Image{}, nsgs: map[string]armnetwork.SecurityGroup{},
		blocked: make(chan struct{}, 16),
	}
}

// AddGroup puts a group there, as an earlier run would have left it.
func (c *Cloud) AddGroup(name string, tags map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := armresources.ResourceGroup{Name: to.Ptr(name), Location: to.Ptr("westus3"), Tags: map[string]*string{}}
	for k, v := range tags {
		g.Tags[k] = to.Ptr(v)
	}
	c.groups[name] = g
}

// Calls is every operation so far, in order: "<op> <group>".
func (c *Cloud) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// Groups are the names of the groups that exist now.
func (c *Cloud) Groups() map[string]map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]string{}
	for n, g := range c.groups {
		out[n] = map[string]string{}
		for k, v := range g.Tags {
			out[n][k] = *v
		}
	}
	return out
}

// VM is what was asked for the VM in group.
func (c *Cloud) VM(group string) (armcompute.VirtualMachine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vms[group]
	return v, ok
}

// Image is the managed image made in group.
func (c *Cloud) Image(group string) (armcompute.Image, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.images[group]
	return v, ok
}

// NSG is the network security group made in group.
func (c *Cloud) NSG(group string) (armnetwork.SecurityGroup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.nsgs[group]
	return v, ok
}

// ListFilter is the filter the last group listing sent.
func (c *Cloud) ListFilter() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listFilter
}

// Blocked is signalled when the Block operation has started waiting.
func (c *Cloud) Blocked() <-chan struct{} { return c.blocked }

// call records an operation and says whether (and how) it fails.
func (c *Cloud) call(ctx context.Context, op, group string, e *azfake.ErrorResponder) bool {
	c.mu.Lock()
	c.calls = append(c.calls, op+" "+group)
	_, exists := c.groups[group]
	code := c.Fail[op]
	c.mu.Unlock()
	switch {
	case code != "":
		status := http.StatusConflict
		if strings.Contains(code, "Authoriz") || strings.Contains(code, "Authentication") {
			status = http.StatusForbidden
		}
		e.SetResponseError(status, code)
		return true
	case op != OpGroup && op != OpList && !exists:
		e.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
		return true
	}
	return false
}

// ClientOptions routes the SDK clients to this subscription: give it to azure.New.
func (c *Cloud) ClientOptions() *arm.ClientOptions {
	r := router{
		c:    c,
		res:  resourcesfake.NewServerFactoryTransport(&resourcesfake.ServerFactory{ResourceGroupsServer: c.groupsServer()}),
		comp: computefake.NewServerFactoryTransport(&computefake.ServerFactory{VirtualMachinesServer: c.vmsServer(), ImagesServer: c.imagesServer()}),
		netw: networkfake.NewServerFactoryTransport(&networkfake.ServerFactory{
			SecurityGroupsServer: c.nsgServer(), VirtualNetworksServer: c.vnetServer(),
			PublicIPAddressesServer: c.ipServer(), InterfacesServer: c.nicServer(),
		}),
	}
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{Transport: r}}
}

// router sends each client's requests to its module's fake server factory, or holds the one
// Block names until it is cancelled (here: the fakes cannot answer a cancelled request).
type router struct {
	c               *Cloud
	res, comp, netw policy.Transporter
}

// blockable are the API methods Block can name.
var blockable = map[string]string{
	"ResourceGroupsClient.CreateOrUpdate":         OpGroup,
	"SecurityGroupsClient.BeginCreateOrUpdate":    OpNSG,
	"VirtualNetworksClient.BeginCreateOrUpdate":   OpVNet,
	"PublicIPAddressesClient.BeginCreateOrUpdate": OpIP,
	"InterfacesClient.BeginCreateOrUpdate":        OpNIC,
	"ImagesClient.BeginCreateOrUpdate":            OpImage,
	"VirtualMachinesClient.BeginCreateOrUpdate":   OpVM,
	"ResourceGroupsClient.BeginDelete":            OpDelete,
}

var groupInPath = regexp.MustCompile(`(?i)/resourcegroups/([^/]+)`)

func (r router) Do(req *http.Request) (*http.Response, error) {
	name, _ := req.Context().Value(runtime.CtxAPINameKey{}).(string)
	if op := blockable[name]; op != "" && op == r.c.Block {
		group := ""
		if m := groupInPath.FindStringSubmatch(req.URL.Path); m != nil {
			group = m[1]
		}
		r.c.mu.Lock()
		r.c.calls = append(r.c.calls, op+" "+group)
		r.c.mu.Unlock()
		r.c.blocked <- struct{}{}
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	switch {
	case strings.HasPrefix(name, "ResourceGroupsClient."):
		return r.res.Do(req)
	case strings.HasPrefix(name, "VirtualMachinesClient."), strings.HasPrefix(name, "ImagesClient."):
		return r.comp.Do(req)
	}
	return r.netw.Do(req)
}

func (c *Cloud) groupsServer() resourcesfake.ResourceGroupsServer {
	return resourcesfake.ResourceGroupsServer{
		CreateOrUpdate: func(ctx context.Context, name string, g armresources.ResourceGroup, _ *armresources.ResourceGroupsClientCreateOrUpdateOptions) (resp azfake.Responder[armresources.ResourceGroupsClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpGroup, name, &e) {
				return
			}
			g.Name = to.Ptr(name)
			c.mu.Lock()
			c.groups[name] = g
			c.mu.Unlock()
			resp.SetResponse(http.StatusCreated, armresources.ResourceGroupsClientCreateOrUpdateResponse{ResourceGroup: g}, nil)
			return
		},
		BeginDelete: func(ctx context.Context, name string, _ *armresources.ResourceGroupsClientBeginDeleteOptions) (resp azfake.PollerResponder[armresources.ResourceGroupsClientDeleteResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpDelete, name, &e) {
				return
			}
			c.mu.Lock()
			delete(c.groups, name)
			delete(c.vms, name)
			c.mu.Unlock()
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, armresources.ResourceGroupsClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(o *armresources.ResourceGroupsClientListOptions) (resp azfake.PagerResponder[armresources.ResourceGroupsClientListResponse]) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.calls = append(c.calls, OpList+" *")
			if o != nil && o.Filter != nil {
				c.listFilter = *o.Filter
			}
			if code := c.Fail[OpList]; code != "" {
				resp.AddResponseError(http.StatusForbidden, code)
				return
			}
			var page []*armresources.ResourceGroup
			for _, g := range c.groups {
				g := g
				page = append(page, &g)
			}
			// Two pages: the reaper must follow them.
			half := len(page) / 2
			resp.AddPage(http.StatusOK, armresources.ResourceGroupsClientListResponse{ResourceGroupListResult: armresources.ResourceGroupListResult{Value: page[:half]}}, nil)
			resp.AddPage(http.StatusOK, armresources.ResourceGroupsClientListResponse{ResourceGroupListResult: armresources.ResourceGroupListResult{Value: page[half:]}}, nil)
			return
		},
	}
}

func (c *Cloud) nsgServer() networkfake.SecurityGroupsServer {
	return networkfake.SecurityGroupsServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armnetwork.SecurityGroup, _ *armnetwork.SecurityGroupsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.SecurityGroupsClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpNSG, group, &e) {
				return
			}
			c.mu.Lock()
			c.nsgs[group] = p
			c.mu.Unlock()
			resp.SetTerminalResponse(http.StatusOK, armnetwork.SecurityGroupsClientCreateOrUpdateResponse{SecurityGroup: p}, nil)
			return
		},
	}
}

func (c *Cloud) vnetServer() networkfake.VirtualNetworksServer {
	return networkfake.VirtualNetworksServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armnetwork.VirtualNetwork, _ *armnetwork.VirtualNetworksClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.VirtualNetworksClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpVNet, group, &e) {
				return
			}
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.SetTerminalResponse(http.StatusOK, armnetwork.VirtualNetworksClientCreateOrUpdateResponse{VirtualNetwork: p}, nil)
			return
		},
	}
}

func (c *Cloud) ipServer() networkfake.PublicIPAddressesServer {
	return networkfake.PublicIPAddressesServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armnetwork.PublicIPAddress, _ *armnetwork.PublicIPAddressesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.PublicIPAddressesClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpIP, group, &e) {
				return
			}
			if p.Properties == nil {
				p.Properties = &armnetwork.PublicIPAddressPropertiesFormat{}
			}
			c.mu.Lock()
			p.Properties.IPAddress = to.Ptr(c.IP)
			c.mu.Unlock()
			resp.SetTerminalResponse(http.StatusOK, armnetwork.PublicIPAddressesClientCreateOrUpdateResponse{PublicIPAddress: p}, nil)
			return
		},
	}
}

func (c *Cloud) nicServer() networkfake.InterfacesServer {
	return networkfake.InterfacesServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armnetwork.Interface, _ *armnetwork.InterfacesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.InterfacesClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpNIC, group, &e) {
				return
			}
			resp.SetTerminalResponse(http.StatusOK, armnetwork.InterfacesClientCreateOrUpdateResponse{Interface: p}, nil)
			return
		},
	}
}

func (c *Cloud) imagesServer() computefake.ImagesServer {
	return computefake.ImagesServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armcompute.Image, _ *armcompute.ImagesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.ImagesClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpImage, group, &e) {
				return
			}
			c.mu.Lock()
			c.images[group] = p
			c.mu.Unlock()
			resp.SetTerminalResponse(http.StatusOK, armcompute.ImagesClientCreateOrUpdateResponse{Image: p}, nil)
			return
		},
	}
}

func (c *Cloud) vmsServer() computefake.VirtualMachinesServer {
	return computefake.VirtualMachinesServer{
		BeginCreateOrUpdate: func(ctx context.Context, group, name string, p armcompute.VirtualMachine, _ *armcompute.VirtualMachinesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcompute.VirtualMachinesClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpVM, group, &e) {
				return
			}
			c.mu.Lock()
			c.vms[group] = p
			c.mu.Unlock()
			if c.OnVM != nil {
				if err := c.OnVM(group, p); err != nil {
					e.SetError(fmt.Errorf("the machine playing the VM: %w", err))
					return
				}
			}
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.SetTerminalResponse(http.StatusOK, armcompute.VirtualMachinesClientCreateOrUpdateResponse{VirtualMachine: p}, nil)
			return
		},
		RetrieveBootDiagnosticsData: func(ctx context.Context, group, name string, _ *armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataResponse], e azfake.ErrorResponder) {
			if c.call(ctx, OpSerial, group, &e) {
				return
			}
			resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataResponse{
				RetrieveBootDiagnosticsDataResult: armcompute.RetrieveBootDiagnosticsDataResult{SerialConsoleLogBlobURI: to.Ptr(c.SerialLogURL)},
			}, nil)
			return
		},
	}
}

// SetEnv configures the azure target (VMTEST_TARGET=azure and its required variables) for the
// length of test t, for a fake subscription: no credentials are set.
func SetEnv(t interface{ Setenv(k, v string) }) {
	t.Setenv("VMTEST_TARGET", "azure")
	t.Setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")
	t.Setenv("VMTEST_AZURE_LOCATION", "westus3")
	t.Setenv("VMTEST_AZURE_IMAGE", "MicrosoftCBLMariner:azure-linux-3:azure-linux-3-gen2:latest")
}
