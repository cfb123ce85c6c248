package timeline

import (
	"encoding/xml"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSVGIsValidAndProportional(t *testing.T) {
	svg := SVG("vm <boot> & ready", []Mark{
		{"QEMU", 100 * time.Millisecond}, {"firmware", 0}, {"kernel", 10 * time.Second},
		{"sshd", 30 * time.Second}, {"SSH", 20 * time.Second}, {"ready", 40 * time.Second},
	})
	var doc struct{ XMLName xml.Name }
	require.NoError(t, xml.Unmarshal(svg, &doc), "%s", svg)
	assert.Equal(t, "svg", doc.XMLName.Local)
	s := string(svg)
	assert.Contains(t, s, "vm &lt;boot&gt; &amp; ready", "the title is escaped")
	for _, name := range []string{"QEMU", "kernel", "sshd", "ready"} {
		assert.Contains(t, s, ">"+name+"</text>")
	}
	assert.NotContains(t, s, ">firmware</text>", "a stage never seen (0) is left out")
	assert.NotContains(t, s, ">SSH</text>", "a stage before the previous one is left out")

	// Bar widths follow the durations: kernel (9.9 s) is about half of sshd (20 s).
	widths := map[string]float64{}
	for _, m := range regexp.MustCompile(`width="([0-9.]+)" height="16" fill="[^"]+"><title>([a-zA-Z]+):`).FindAllStringSubmatch(s, -1) {
		w, err := strconv.ParseFloat(m[1], 64)
		require.NoError(t, err)
		widths[m[2]] = w
	}
	require.Len(t, widths, 4)
	assert.InDelta(t, 9.9/20, widths["kernel"]/widths["sshd"], 0.01)
	assert.InDelta(t, 10.0/20, widths["ready"]/widths["sshd"], 0.01)
}

func TestSVGWithNothingIsStillAPicture(t *testing.T) {
	svg := SVG("empty", nil)
	var doc struct{ XMLName xml.Name }
	require.NoError(t, xml.Unmarshal(svg, &doc))
	assert.True(t, strings.HasSuffix(string(svg), "</svg>\n"))
}
