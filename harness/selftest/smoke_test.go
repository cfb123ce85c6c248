package selftest

import (
	"testing"

	"github.com/azl-vmtest/azl-vmtest/harness"
)

func TestSmoke(t *testing.T) {
	m := harness.Boot(t)
	t.Log(m.Output(t, "sudo cloud-init schema --system 2>&1; sudo cloud-init schema --system --annotate 2>&1 | head -50; systemd-analyze; cat /etc/os-release"))
}
