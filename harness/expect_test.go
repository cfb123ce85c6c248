package harness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azl-vmtest/azl-vmtest/harness/profile"
)

// outcome records how Want ended a test: by returning, skipping or failing.
type outcome struct {
	testing.TB
	skipped, fatal string
}

type stop struct{}

func (o *outcome) Helper()                  {}
func (o *outcome) Skip(args ...any)         { o.skipped = fmt.Sprint(args...); panic(stop{}) }
func (o *outcome) Fatal(args ...any)        { o.fatal = fmt.Sprint(args...); panic(stop{}) }
func (o *outcome) Skipf(f string, a ...any) { o.Skip(fmt.Sprintf(f, a...)) }
func (o *outcome) Fatalf(f string, a ...any) {
	o.Fatal(fmt.Sprintf(f, a...))
}

func want[T any](t *testing.T, p *profile.Profile, key string) (v T, o *outcome) {
	o = &outcome{TB: t}
	defer func() {
		if r := recover(); r != nil && r != (stop{}) {
			panic(r)
		}
	}()
	v = Want[T](o, &Machine{profile: p}, key)
	return v, o
}

func TestWantReadsByKey(t *testing.T) {
	p, err := profile.Load("standin")
	require.NoError(t, err)

	on, o := want[bool](t, p, "logging.auditd")
	assert.True(t, on)
	assert.Empty(t, o.skipped+o.fatal)

	ports, o := want[[]string](t, p, "firewall.ports")
	assert.Empty(t, ports, "an empty list is a promise of none")
	assert.Empty(t, o.skipped+o.fatal, "and it is checked, not skipped")

	_, o = want[bool](t, p, "boot.bls_entries")
	assert.Contains(t, o.skipped, "profile standin does not promise boot.bls_entries: Debian's GRUB")
	assert.Empty(t, o.fatal)

	_, o = want[string](t, p, "logging.auditd")
	assert.Contains(t, o.fatal, "logging.auditd is a *bool, not a string")

	_, o = want[string](t, &profile.Profile{Name: "bare"}, "firewall.default_zone")
	assert.Contains(t, o.fatal, "profile bare declares nothing for firewall.default_zone", "a missing expectation fails, never passes")
}

// deadlineTB is a test whose go test -timeout ends soon.
type deadlineTB struct {
	testing.TB
	d time.Time
}

func (d deadlineTB) Deadline() (time.Time, bool) { return d.d, true }

// A boot stops a minute before go test's -timeout (which would panic the binary with no
// artifacts) and says that this bound, not the boot timeout, ran out.
func TestBootContextEndsBeforeTheTestTimeout(t *testing.T) {
	ctx, cancel := bootContext(deadlineTB{TB: t, d: time.Now().Add(time.Minute + 100*time.Millisecond)}, context.Background())
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the boot context outlived the test's deadline")
	}
	err := explainDeadline(ctx, fmt.Errorf("waiting for SSH: %w", ctx.Err()))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "go test's -timeout is a minute away")
	assert.NoError(t, explainDeadline(ctx, nil))
}
