// Package azure provisions the machines of the azure target (VMTEST_TARGET=azure): one
// resource group per machine, tagged so that a reaper finds what a killed run left, holding a
// VM made from a marketplace image, a compute-gallery image or a VHD, with cloud-init custom
// data that carries the harness's keys; and deletes the group afterwards, on every path.
// Everything goes through the Azure SDK for Go (azidentity, armresources, armnetwork,
// armcompute); tests use the SDK's own fake servers.
package azure

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
)

// Config is what a run provisions, read from the environment by FromEnv.
type Config struct {
	Subscription string // AZURE_SUBSCRIPTION_ID
	Location     string // VMTEST_AZURE_LOCATION, e.g. westus3
	Image        Image  // VMTEST_AZURE_IMAGE
	Size         string // VMTEST_AZURE_SIZE
	// Security is TrustedLaunch (Secure Boot and a vTPM, Azure's default for Gen2 images) or
	// Standard (VMTEST_AZURE_SECURITY).
	Security string
	// DiskController is "" (the size's default), SCSI or NVMe (VMTEST_AZURE_DISK_CONTROLLER).
	DiskController string
	// SSHSource is the address range allowed to reach port 22 (VMTEST_AZURE_SSH_SOURCE).
	SSHSource string
	Owner     string // VMTEST_AZURE_OWNER (else $USER): a tag, for the reaper's report
}

// Defaults for what the environment does not say.
const (
	DefaultSize      = "Standard_D2s_v5"
	DefaultSSHSource = "*"
	SecurityTrusted  = "TrustedLaunch"
	SecurityStandard = "Standard"
)

// Image is where the OS disk comes from: exactly one field is set.
type Image struct {
	// URN is a marketplace image, publisher:offer:sku:version.
	URN *armcompute.ImageReference
	// Gallery is a compute gallery image or image version: a resource ID
	// (/subscriptions/…/galleries/G/images/I[/versions/V]), or a shared
	// (/SharedGalleries/…) or community (/CommunityGalleries/…) gallery image ID.
	Gallery string
	// VHD is a page blob (https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME.vhd) in the
	// subscription, in the same location: the run makes a managed image of it in its group.
	VHD string
}

func (i Image) String() string {
	switch {
	case i.URN != nil:
		return strings.Join([]string{*i.URN.Publisher, *i.URN.Offer, *i.URN.SKU, *i.URN.Version}, ":")
	case i.Gallery != "":
		return i.Gallery
	}
	return i.VHD
}

var (
	urnRe      = regexp.MustCompile(`^[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+$`)
	galleryRe  = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+/images/[^/]+(/versions/[^/]+)?$`)
	sharedRe   = regexp.MustCompile(`(?i)^/(SharedGalleries|CommunityGalleries)/[^/]+/Images/[^/]+(/Versions/[^/]+)?$`)
	locationRe = regexp.MustCompile(`^[a-z0-9]+$`)
	sizeRe     = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// ParseImage reads VMTEST_AZURE_IMAGE.
func ParseImage(s string) (Image, error) {
	switch {
	case urnRe.MatchString(s):
		p := strings.Split(s, ":")
		return Image{URN: &armcompute.ImageReference{Publisher: &p[0], Offer: &p[1], SKU: &p[2], Version: &p[3]}}, nil
	case galleryRe.MatchString(s) || sharedRe.MatchString(s):
		return Image{Gallery: s}, nil
	case strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err == nil && strings.HasSuffix(u.Host, ".blob.core.windows.net") && strings.HasSuffix(strings.ToLower(u.Path), ".vhd") && strings.Count(u.Path, "/") >= 2 {
			return Image{VHD: s}, nil
		}
	}
	return Image{}, fmt.Errorf("VMTEST_AZURE_IMAGE=%q: give a marketplace URN (publisher:offer:sku:version, e.g. MicrosoftCBLMariner:azure-linux-3:azure-linux-3-gen2:latest), a compute gallery image ID (/subscriptions/…/providers/Microsoft.Compute/galleries/G/images/I[/versions/V]) or a VHD page blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME.vhd)", s)
}

// FromEnv reads the azure target's configuration; every mistake is reported at once, naming the
// variable, before anything reaches Azure.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Subscription:   getenv("AZURE_SUBSCRIPTION_ID"),
		Location:       strings.ToLower(getenv("VMTEST_AZURE_LOCATION")),
		Size:           getenv("VMTEST_AZURE_SIZE"),
		Security:       getenv("VMTEST_AZURE_SECURITY"),
		DiskController: getenv("VMTEST_AZURE_DISK_CONTROLLER"),
		SSHSource:      getenv("VMTEST_AZURE_SSH_SOURCE"),
		Owner:          getenv("VMTEST_AZURE_OWNER"),
	}
	var missing []string
	for _, v := range []struct{ name, val, what string }{
		{"AZURE_SUBSCRIPTION_ID", c.Subscription, "the subscription to create VMs in"},
		{"VMTEST_AZURE_LOCATION", c.Location, "the region, e.g. westus3"},
		{"VMTEST_AZURE_IMAGE", getenv("VMTEST_AZURE_IMAGE"), "the image: a marketplace URN, a gallery image ID or a VHD URL"},
	} {
		if v.val == "" {
			missing = append(missing, v.name+" ("+v.what+")")
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("VMTEST_TARGET=azure needs %s", strings.Join(missing, ", "))
	}
	var errs []error
	var err error
	if c.Image, err = ParseImage(getenv("VMTEST_AZURE_IMAGE")); err != nil {
		errs = append(errs, err)
	}
	if !locationRe.MatchString(c.Location) {
		errs = append(errs, fmt.Errorf("VMTEST_AZURE_LOCATION=%q: give a region name such as westus3 (az account list-locations -o table)", c.Location))
	}
	if c.Size == "" {
		c.Size = DefaultSize
	} else if !sizeRe.MatchString(c.Size) {
		errs = append(errs, fmt.Errorf("VMTEST_AZURE_SIZE=%q: give a VM size such as %s", c.Size, DefaultSize))
	}
	switch {
	case c.Security == "" && c.Image.VHD != "":
		c.Security = SecurityStandard // a managed image made from a VHD cannot boot Trusted Launch
	case c.Security == "":
		c.Security = SecurityTrusted
	case c.Security == SecurityTrusted && c.Image.VHD != "":
		errs = append(errs, errors.New("VMTEST_AZURE_SECURITY=TrustedLaunch with a VHD: the VHD becomes a managed image, which Azure cannot boot with Trusted Launch; publish it to a compute gallery and give the gallery image ID, or set VMTEST_AZURE_SECURITY=Standard"))
	case c.Security != SecurityTrusted && c.Security != SecurityStandard:
		errs = append(errs, fmt.Errorf("VMTEST_AZURE_SECURITY=%q: give TrustedLaunch (Secure Boot and vTPM) or Standard", c.Security))
	}
	switch strings.ToLower(c.DiskController) {
	case "":
	case "scsi":
		c.DiskController = string(armcompute.DiskControllerTypesSCSI)
	case "nvme":
		c.DiskController = string(armcompute.DiskControllerTypesNVMe)
	default:
		errs = append(errs, fmt.Errorf("VMTEST_AZURE_DISK_CONTROLLER=%q: give SCSI or NVMe (NVMe needs a size that offers it, e.g. Standard_D2ds_v6)", c.DiskController))
	}
	if c.SSHSource == "" {
		c.SSHSource = DefaultSSHSource
	}
	if c.Owner == "" {
		c.Owner = getenv("USER")
	}
	if c.Owner == "" {
		c.Owner = "unknown"
	}
	return c, errors.Join(errs...)
}
