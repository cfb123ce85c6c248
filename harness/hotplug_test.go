package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A disk on the test's own machine stays plugged at the test's end (the machine is stopped
// next); on a shared machine, or on a parent test's machine used by a subtest, it is unplugged.
func TestUnplugsAtCleanupOnlyOthersMachines(t *testing.T) {
	own := &Machine{owner: t}
	assert.False(t, own.unplugsAtCleanup(t), "the test's own machine")
	assert.True(t, (&Machine{}).unplugsAtCleanup(t), "a shared machine")
	t.Run("subtest", func(sub *testing.T) {
		assert.True(sub, own.unplugsAtCleanup(sub), "the parent test's machine, from a subtest")
	})
}
