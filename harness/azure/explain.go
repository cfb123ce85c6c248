package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// explanations map Azure's error codes to what the user should do.
var explanations = []struct {
	codes []string
	fix   string
}{
	{[]string{"QuotaExceeded", "OperationNotAllowed", "InsufficientQuota"},
		"the subscription's quota for this size or region is used up: free cores, request more (az vm list-usage -l LOCATION), or choose another VMTEST_AZURE_SIZE or VMTEST_AZURE_LOCATION"},
	{[]string{"SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest"},
		"Azure has no capacity for VMTEST_AZURE_SIZE in VMTEST_AZURE_LOCATION now: choose another size or region (az vm list-skus -l LOCATION)"},
	{[]string{"ImageNotFound", "PlatformImageNotFound", "GalleryImageNotFound", "GalleryImageVersionNotFound", "InvalidImageReference"},
		"VMTEST_AZURE_IMAGE names no image this subscription can use in VMTEST_AZURE_LOCATION (az vm image list --all -p PUBLISHER, az sig image-version list)"},
	{[]string{"MarketplacePurchaseEligibilityFailed", "ResourcePurchaseValidationFailed"},
		"the marketplace image's terms are not accepted for this subscription: az vm image terms accept --urn URN"},
	{[]string{"InvalidBlobUri", "BlobNotFound", "InvalidUrl"},
		"VMTEST_AZURE_IMAGE's VHD cannot be read: it must be a page blob in a storage account of this subscription in VMTEST_AZURE_LOCATION"},
	{[]string{"AuthorizationFailed", "LinkedAuthorizationFailed", "InvalidAuthenticationToken", "InvalidAuthenticationTokenTenant", "ExpiredAuthenticationToken", "AuthenticationFailed"},
		"the signed-in identity may not do this in AZURE_SUBSCRIPTION_ID: give it the Contributor role on the subscription (or sign in as one that has it)"},
	{[]string{"SubscriptionNotFound", "InvalidSubscriptionId"},
		"AZURE_SUBSCRIPTION_ID names no subscription the signed-in identity can see (az account list)"},
	{[]string{"LocationNotAvailableForResourceGroup", "LocationRequired", "NoRegisteredProviderFound", "InvalidResourceLocation"},
		"VMTEST_AZURE_LOCATION is not a region this subscription can use (az account list-locations)"},
}

// Explain adds, to an error from Azure, what to do about it. Other errors pass unchanged.
func Explain(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	for _, e := range explanations {
		for _, c := range e.codes {
			if re.ErrorCode == c {
				return fmt.Errorf("%s (HTTP %d): %s", c, re.StatusCode, e.fix)
			}
		}
	}
	if re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%s (HTTP %d): %s", re.ErrorCode, re.StatusCode, explanations[5].fix)
	}
	return fmt.Errorf("%s (HTTP %d): %w", re.ErrorCode, re.StatusCode, err)
}

// CredentialTimeout bounds the first token request: with no credentials DefaultAzureCredential
// fails in about a second (its managed-identity probe is bounded to one).
var CredentialTimeout = 30 * time.Second

// Credential is DefaultAzureCredential (environment service principal, workload identity,
// managed identity, az or azd sign-in), checked by asking for a token for Azure Resource
// Manager now, so that no credentials fail at once, naming what would do.
func Credential(ctx context.Context) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, CredentialTimeout)
		defer cancel()
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	}
	if err != nil {
		return nil, fmt.Errorf("VMTEST_TARGET=azure: no usable Azure credentials: sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal) or AZURE_FEDERATED_TOKEN_FILE (workload identity, as pipelines do), or run on an Azure VM with a managed identity. DefaultAzureCredential said: %w", err)
	}
	return cred, nil
}
