// Package trustedlaunch verifies what an image promises on a VM booted as Azure's Trusted
// Launch boots it: Secure Boot on where the profile promises it (secureboot.*; the harness's
// WithSecureBoot) and a TPM 2.0 (tpm.*; WithTPM), in one VM. Both sets of promises are about
// the same boot (the firmware measures the signed chain it starts into the TPM), so one VM
// judges both: one saved state (one real boot when it is built) instead of two.
package trustedlaunch

import "github.com/azl-vmtest/azl-vmtest/harness/check"

// Checks are the suite's read-only checks, one per profile key: Secure Boot's, then the TPM's.
var Checks = append(append(check.Table{}, secureBootChecks...), tpmChecks...)
