package console

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Recorder is the io.Writer QEMU's serial console goes to: it keeps a file, the lines, and tells
// waiters about matches as they happen (nothing polls).
type Recorder struct {
	mu      sync.Mutex
	file    *os.File
	lines   []Line
	partial []byte
	changed chan struct{} // closed and replaced on every new line
	fatal   chan struct{}
	fatalAt *Hit
}

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
	if r.file != nil {
		_, _ = r.file.Write(p)
	}
	r.partial = append(r.partial, p...)
	added := false
	for {
		i := strings.IndexByte(string(r.partial), '\n')
		if i < 0 {
			break
		}
		r.addLine(string(r.partial[:i]))
		r.partial = r.partial[i+1:]
		added = true
	}
	// A prompt (grub rescue>, login:) has no newline: look at the partial line too.
	if !added && len(r.partial) > 0 && r.fatalAt == nil {
		r.checkFatal(Line{N: len(r.lines) + 1, Text: clean(string(r.partial))})
	}
	if added {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	return len(p), nil
}

func (r *Recorder) addLine(s string) {
	l := Line{N: len(r.lines) + 1, Text: clean(s)}
	r.lines = append(r.lines, l)
	if r.fatalAt == nil {
		r.checkFatal(l)
	}
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
	return len(r.lines)
}

// Lines returns the lines after the first `from`.
func (r *Recorder) Lines(from int) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	if from > len(r.lines) {
		from = len(r.lines)
	}
	return append([]Line(nil), r.lines[from:]...)
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
		for _, l := range r.lines[min(from, len(r.lines)):] {
			if re.MatchString(l.Text) {
				r.mu.Unlock()
				return l, nil
			}
		}
		from = len(r.lines)
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
