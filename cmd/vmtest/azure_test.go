package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/azure"
	"github.com/azl-vmtest/azl-vmtest/harness/azure/azuretest"
)

// `vmtest azure reap` against a fake subscription: what a killed run left (old) goes, a run
// still going (young) and a group not the harness's stay, and each is reported.
func TestAzureReap(t *testing.T) {
	cloud := azuretest.New()
	old := time.Now().Add(-8 * time.Hour).UTC().Format(time.RFC3339)
	young := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	cloud.AddGroup("vmtest-a-suites_boot", map[string]string{azure.TagRun: "a", azure.TagCreated: old, azure.TagOwner: "ci"})
	cloud.AddGroup("vmtest-b-suites_boot", map[string]string{azure.TagRun: "b", azure.TagCreated: young, azure.TagOwner: "ci"})
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := reap(context.Background(), &out, args, "sub-1", &azfake.TokenCredential{}, cloud.ClientOptions())
		return out.String(), err
	}

	out, err := run("-dry-run")
	require.NoError(t, err)
	assert.Contains(t, out, "2 group(s) tagged azl-vmtest-run in subscription sub-1: 0 deleted")
	assert.Len(t, cloud.Groups(), 2)

	out, err = run("-older-than", "6h")
	require.NoError(t, err)
	assert.Contains(t, out, "vmtest-a-suites_boot (run a, owner ci")
	assert.Contains(t, out, "): deleted")
	assert.Contains(t, out, "vmtest-b-suites_boot (run b, owner ci, machine , age 10m0s): kept: younger than 6h0m0s")
	assert.Contains(t, out, "1 deleted")
	assert.Equal(t, []string{"vmtest-b-suites_boot"}, keys(cloud.Groups()))

	cloud.Fail[azuretest.OpDelete] = "ScopeLocked"
	out, err = run("-older-than", "0")
	require.ErrorContains(t, err, "1 group(s) old enough could not be deleted")
	assert.Contains(t, out, "NOT deleted")

	_, err = run("-older-than", "-1h")
	require.ErrorContains(t, err, "want 0 or more")
}

func keys(m map[string]map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
