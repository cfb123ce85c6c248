package standin

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/azl-vmtest/azl-vmtest/harness/arch"
)

// aptEntry is one source: a URI, a suite and its components.
type aptEntry struct {
	URI, Suite, Components, SignedBy string
	Arches                           []string
}

// hostSources returns one-line apt sources for the stand-in's suite, taken from the host's own
// apt configuration (a corporate mirror keeps working), or from $VMTEST_APT_SOURCES. No mirror is
// ever hard-coded.
func hostSources(a arch.Arch) (string, error) {
	if f := os.Getenv("VMTEST_APT_SOURCES"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("VMTEST_APT_SOURCES: %w", err)
		}
		return string(b), nil
	}
	var entries []aptEntry
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.HasSuffix(f, ".sources") {
			entries = append(entries, parseDeb822(string(b))...)
		} else {
			entries = append(entries, parseOneLine(string(b))...)
		}
	}
	out := selectSources(entries, Suite, a.Debian)
	if out == "" {
		return "", fmt.Errorf("the host's apt sources (/etc/apt/sources.list{,.d}) have no %q entries usable for %s; "+
			"write one-line apt sources for Debian %s (e.g. \"deb <your-mirror> %s main\") to a file and set VMTEST_APT_SOURCES=<file>",
			Suite, a.Debian, Suite, Suite)
	}
	return out, nil
}

// selectSources keeps the entries of suite's family (suite, suite-updates, suite-security) that
// serve arch, as one-line sources.
func selectSources(entries []aptEntry, suite, debArch string) string {
	var sb strings.Builder
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Suite != suite && !strings.HasPrefix(e.Suite, suite+"-") && !strings.HasPrefix(e.Suite, suite+"/") {
			continue
		}
		if len(e.Arches) > 0 && !contains(e.Arches, debArch) {
			continue
		}
		line := e.line()
		if !seen[line] {
			seen[line] = true
			sb.WriteString(line)
		}
	}
	return sb.String()
}

// line is e as a one-line apt source.
func (e aptEntry) line() string {
	opts := ""
	if e.SignedBy != "" && !strings.Contains(e.SignedBy, "\n") { // an inline key has no one-line form
		opts = " [signed-by=" + e.SignedBy + "]"
	}
	return fmt.Sprintf("deb%s %s %s %s\n", opts, e.URI, e.Suite, e.Components)
}

// privateApt prepares an apt configuration of its own under work, reading only the one-line
// sources given, for debArch, and returns apt-get's arguments for it: the host's apt state
// is never touched. apt still checks what it fetches against the signed indexes, with the
// host's keyrings.
func privateApt(work, sources, debArch string) ([]string, error) {
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(work, "sources.list"), []byte(sources), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"-q", "-o", "Dir::Etc::SourceList=" + filepath.Join(work, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(work, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(work, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(work, "cache"),
		"-o", "APT::Architecture=" + debArch, "-o", "APT::Architectures=" + debArch,
		"-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=3",
	}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseOneLine(text string) []aptEntry {
	var out []aptEntry
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if !strings.HasPrefix(line, "deb ") && !strings.HasPrefix(line, "deb\t") {
			continue
		}
		line = strings.TrimSpace(line[3:])
		var e aptEntry
		if strings.HasPrefix(line, "[") {
			end := strings.Index(line, "]")
			if end < 0 {
				continue
			}
			for _, opt := range strings.Fields(line[1:end]) {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "arch":
					e.Arches = strings.Split(v, ",")
				case "signed-by":
					e.SignedBy = v
				}
			}
			line = strings.TrimSpace(line[end+1:])
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		e.URI, e.Suite, e.Components = f[0], f[1], strings.Join(f[2:], " ")
		out = append(out, e)
	}
	return out
}

func parseDeb822(text string) []aptEntry {
	var out []aptEntry
	flush := func(p map[string]string) {
		if len(p) == 0 || !contains(strings.Fields(p["types"]), "deb") || strings.EqualFold(p["enabled"], "no") {
			return
		}
		for _, uri := range strings.Fields(p["uris"]) {
			for _, s := range strings.Fields(p["suites"]) {
				out = append(out, aptEntry{URI: uri, Suite: s, Components: p["components"],
					SignedBy: strings.TrimSpace(p["signed-by"]), Arches: strings.Fields(p["architectures"])})
			}
		}
	}
	para := map[string]string{}
	last := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush(para)
			para, last = map[string]string{}, ""
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" { // continuation (e.g. an inline Signed-By key)
				para[last] += "\n" + line
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				last = strings.ToLower(strings.TrimSpace(k))
				para[last] = strings.TrimSpace(v)
			}
		}
	}
	flush(para)
	return out
}
