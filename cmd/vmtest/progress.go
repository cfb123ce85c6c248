package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// progress shows a long step's lines: on a terminal one live line, each new line replacing the
// last (cut to the terminal's usual width); elsewhere (CI logs) one plain line each.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	live bool // a live line is on screen
	buf  []byte
}

func newProgress(f *os.File) *progress {
	st, err := f.Stat()
	return &progress{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

// Logf is a harness log function (harness.WithLog).
func (p *progress) Logf(format string, args ...any) { p.line(fmt.Sprintf(format, args...)) }

// Write takes a tool's output (the image builder's log), line by line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.buf = append(p.buf, b...)
	var lines []string
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	p.mu.Unlock()
	for _, l := range lines {
		p.line(l)
	}
	return len(b), nil
}

const liveWidth = 100

func (p *progress) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s = strings.TrimRight(s, "\r\n")
	if !p.tty {
		fmt.Fprintln(p.w, s)
		return
	}
	if first, _, _ := strings.Cut(s, "\n"); len(first) > liveWidth {
		s = first[:liveWidth-1] + "…"
	} else {
		s = first
	}
	fmt.Fprint(p.w, "\r\033[K"+s)
	p.live = true
}

// Done ends the live line, so what follows starts on a line of its own.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		fmt.Fprintln(p.w)
		p.live = false
	}
}
