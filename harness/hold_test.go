package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/azl-vmtest/azl-vmtest/harness/runstate"
)

func TestHeldNamesAreShortAndReadable(t *testing.T) {
	assert.Equal(t, "testchecks-firewall-ports", heldName("TestChecks/firewall.ports"))
	assert.Equal(t, "firewall-shared-2", heldName("firewall-shared-2"))
	long := heldName("TestAVeryLongTestNameThatGoesOn/and_on_with_a_subtest_name")
	assert.LessOrEqual(t, len(long), 40)
	assert.Regexp(t, `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, long)
}

func TestKeepDecidesArtifacts(t *testing.T) {
	for k, want := range map[Keep][2]bool{ // passed, failed
		KeepNever: {false, false}, KeepFailed: {false, true}, KeepAlways: {true, true}, KeepVMOnFailure: {false, true},
	} {
		assert.Equal(t, want[0], k.artifacts(false), "%s, passed", k)
		assert.Equal(t, want[1], k.artifacts(true), "%s, failed", k)
	}
}

func TestHowToReachPinsTheHostKey(t *testing.T) {
	s := runstate.State{Name: "bug", Target: "ssh://azlvmtest@127.0.0.1:40022", KeyFile: "/c/run/bug/id_vmtest", KnownHosts: "/c/run/bug/known_hosts", ConsoleLog: "/tmp/x/console.log"}
	how := HowToReach(s)
	assert.Contains(t, how, "vmtest ssh bug -- cat /etc/os-release")
	assert.Contains(t, how, "ssh -i /c/run/bug/id_vmtest -o UserKnownHostsFile=/c/run/bug/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -p 40022 azlvmtest@127.0.0.1")
	assert.Contains(t, how, "vmtest test bug ./suites/boot/")
}
