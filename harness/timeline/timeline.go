// Package timeline draws a machine's start as an SVG picture: one bar per stage (QEMU start,
// firmware, kernel, sshd, SSH, cloud-init, ready; or QEMU start, restore, SSH, ready), each from
// the end of the one before, on a seconds axis. Artifacts carry it beside the guest's own boot
// chart (systemd-analyze plot) for people who would rather look than read.
package timeline

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"time"
)

// Mark is a stage and when it ended, from the machine's start.
type Mark struct {
	Name string
	At   time.Duration
}

// Geometry of the picture, in pixels.
const (
	width  = 760
	left   = 150 // stage names
	right  = 20
	top    = 40
	rowH   = 26
	barH   = 16
	bottom = 40
)

// SVG draws marks (in order; zero and backwards marks are skipped) under title.
func SVG(title string, marks []Mark) []byte {
	var kept []Mark
	var last time.Duration
	for _, m := range marks {
		if m.At <= 0 || m.At < last {
			continue
		}
		kept = append(kept, m)
		last = m.At
	}
	end := last.Seconds()
	if end <= 0 {
		end = 1
	}
	step := tickStep(end)
	end = math.Ceil(end/step) * step
	scale := float64(width-left-right) / end
	height := top + rowH*len(kept) + bottom

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", esc(title))
	axisY := top + rowH*len(kept) + 8
	for s := 0.0; s <= end+1e-9; s += step {
		x := float64(left) + s*scale
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top-6, x, axisY)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%gs</text>`+"\n", x, axisY+16, s)
	}
	var from time.Duration
	for i, m := range kept {
		y := top + rowH*i
		x := float64(left) + from.Seconds()*scale
		w := math.Max((m.At-from).Seconds()*scale, 1)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-3, esc(m.Name))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.2fs to %.2fs</title></rect>`+"\n",
			x, y, w, barH, colour(i), esc(m.Name), from.Seconds(), m.At.Seconds())
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%.1fs</text>`+"\n", x+w+4, y+barH-3, m.At.Seconds())
		from = m.At
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// tickStep is a round axis step giving at most about ten ticks.
func tickStep(end float64) float64 {
	for _, s := range []float64{0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600} {
		if end/s <= 10 {
			return s
		}
	}
	return math.Ceil(end / 10)
}

func colour(i int) string {
	palette := []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"}
	return palette[i%len(palette)]
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
