package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestProgressPlainOffATerminal(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b}
	p.Logf("vm %s: +%.1fs QEMU up", "bug", 0.2)
	p.Write([]byte("standin: mmdebstrap\nstandin: disk"))
	p.Write([]byte(" image\n"))
	p.Done()
	assert.Equal(t, "vm bug: +0.2s QEMU up\nstandin: mmdebstrap\nstandin: disk image\n", b.String())
}

func TestProgressOneLiveLineOnATerminal(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, tty: true}
	p.Logf("vm bug: +0.2s QEMU up")
	p.Logf("vm bug: ready after 6.7s\nsecond line dropped")
	p.Logf("%s", strings.Repeat("x", 300))
	p.Done()
	out := b.String()
	assert.Equal(t, 3, strings.Count(out, "\r\033[K"), "each line replaces the last")
	assert.NotContains(t, out, "second line dropped")
	assert.Contains(t, out, strings.Repeat("x", liveWidth-1)+"…")
	assert.NotContains(t, out, strings.Repeat("x", liveWidth))
	assert.True(t, strings.HasSuffix(out, "…\n"), "Done ends the live line")
}
