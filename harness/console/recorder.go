package console

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Recorder is the io.Writer QEMU's serial console goes to: it keeps a file (everything), the
// last KeepLines lines in memory, and tells waiters about matches as they happen (nothing
// polls). Its cost is linear in the output: QEMU writes a byte at a time, and a line without a
// newline is cut at MaxLine bytes.
type Recorder struct {
	mu      sync.Mutex
	file    *os.File
	lines   []Line // the last KeepLines lines
	total   int    // lines so far (lines[0] is line total-len(lines)+1)
	partial []byte
	changed chan struct{} // closed and replaced on every new line
	fatal   chan struct{}
	fatalAt *Hit
}

const (
	// KeepLines is how many console lines stay in memory (the file keeps all).
	KeepLines = 20000
	// MaxLine cuts a line that never ends (a runaway guest) into pieces of this size.
	MaxLine = 4096
	// promptMax: an unfinished line is checked for a fatal prompt (grub rescue>, (initramfs))
	// only while it is this short; prompts are.
	promptMax = 256
)

// NewRecorder writes the console to path as well.
func NewRecorder(path string) (*Recorder, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &Recorder{file: f, changed: make(chan struct{}), fatal: make(chan struct{})}, nil
}

// Write implements io.Writer.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if r.file != nil {
		_, _ = r.file.Write(p)
	}
	added := false
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := MaxLine - len(r.partial); len(chunk) > room {
			chunk = chunk[:room]
			i = -1
		}
		r.partial = append(r.partial, chunk...)
		p = p[len(chunk):]
		switch {
		case i >= 0: // a line ended
			p = p[1:]
			fallthrough
		case len(r.partial) >= MaxLine: // a line too long: cut it
			r.addLine(string(r.partial))
			r.partial = r.partial[:0]
			added = true
		}
	}
	// A prompt (grub rescue>, (initramfs), a root shell's #) has no newline: look at a short
	// partial line too, when it ends the way prompts end.
	if pl := len(r.partial); pl > 0 && pl <= promptMax && r.fatalAt == nil && strings.IndexByte(" >#:)$", r.partial[pl-1]) >= 0 {
		r.checkFatal(Line{N: r.total + 1, Text: clean(string(r.partial))})
	}
	if added {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	return n, nil
}

func (r *Recorder) addLine(s string) {
	r.total++
	l := Line{N: r.total, Text: clean(s)}
	if len(r.lines) >= KeepLines {
		// Drop the oldest half at once: amortized constant per line.
		r.lines = append(r.lines[:0], r.lines[len(r.lines)-KeepLines/2:]...)
	}
	r.lines = append(r.lines, l)
	if r.fatalAt == nil {
		r.checkFatal(l)
	}
}

// kept returns the in-memory lines after the first `from` (clipped to what is kept).
func (r *Recorder) kept(from int) []Line {
	first := r.total - len(r.lines) // lines before r.lines[0]
	i := from - first
	if i < 0 {
		i = 0
	}
	if i > len(r.lines) {
		i = len(r.lines)
	}
	return r.lines[i:]
}

func (r *Recorder) checkFatal(l Line) {
	for _, c := range Checks {
		if c.Fatal && c.Pattern.MatchString(l.Text) {
			h := Hit{Check: c, Line: l}
			r.fatalAt = &h
			close(r.fatal)
			return
		}
	}
}

// Fatal is closed when a fatal check matched (the guest will not come back).
func (r *Recorder) Fatal() <-chan struct{} { return r.fatal }

// FatalError describes the fatal match with the console tail, or nil.
func (r *Recorder) FatalError() error {
	r.mu.Lock()
	h := r.fatalAt
	r.mu.Unlock()
	if h == nil {
		return nil
	}
	msg := fmt.Sprintf("guest console shows %s at line %d: %s", h.Check.Name, h.Line.N, h.Line.Text)
	if h.Check.Hint != "" {
		msg += "\n(" + h.Check.Hint + ")"
	}
	return fmt.Errorf("%s\nconsole tail:\n%s", msg, r.Tail(40))
}

// Len is the number of complete lines so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Lines returns the lines after the first `from` that are still in memory (the last
// KeepLines; the file has them all).
func (r *Recorder) Lines(from int) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.kept(from)...)
}

// Tail is the last n lines as text (with the partial last line).
func (r *Recorder) Tail(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := len(r.lines) - n
	if start < 0 {
		start = 0
	}
	var sb strings.Builder
	for _, l := range r.lines[start:] {
		sb.WriteString("  | " + l.Text + "\n")
	}
	if len(r.partial) > 0 {
		sb.WriteString("  | " + clean(string(r.partial)) + "\n")
	}
	return sb.String()
}

// WaitFor blocks until a line after the first `from` matches re, or ctx ends.
func (r *Recorder) WaitFor(ctx context.Context, from int, re *regexp.Regexp) (Line, error) {
	for {
		r.mu.Lock()
		for _, l := range r.kept(from) {
			if re.MatchString(l.Text) {
				r.mu.Unlock()
				return l, nil
			}
		}
		from = r.total
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Line{}, fmt.Errorf("waiting for %q on the console: %w", re, ctx.Err())
		}
	}
}

// Close closes the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]`)

// clean drops terminal escapes, carriage returns and other control characters.
func clean(s string) string {
	s = ansi.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
