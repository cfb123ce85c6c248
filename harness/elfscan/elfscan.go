// Package elfscan reads the hardening facts of ELF executables and shared objects (PIE, RELRO,
// non-executable stack, stack protector, FORTIFY) and the exported, versioned dynamic symbols of
// libraries, with the standard library's debug/elf only. The guest-side helper (vmtest-probe)
// runs it inside a VM and prints JSON; suites judge that output on the host.
package elfscan

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// The hardening properties, in report order. Each applies to executables and shared objects
// except PIE, which applies to executables only.
const (
	PIE            = "pie"             // a position-independent executable (ASLR can move it)
	RelroFull      = "relro_full"      // PT_GNU_RELRO and BIND_NOW: the GOT is read-only after start
	NXStack        = "nx_stack"        // PT_GNU_STACK without PF_X
	StackProtector = "stack_protector" // calls __stack_chk_fail (or reads __stack_chk_guard)
	Fortify        = "fortify"         // calls a FORTIFY_SOURCE checked function (__*_chk)
)

// Properties lists the properties in report order.
var Properties = []string{PIE, RelroFull, NXStack, StackProtector, Fortify}

// Facts is what Inspect learned about one file.
type Facts struct {
	Path       string
	Executable bool            // an executable (else a shared object)
	Has        map[string]bool // property -> present
}

// ErrNotProgram says a file is not an ELF executable or shared object (a relocatable object,
// a core file, a script, data).
var ErrNotProgram = errors.New("not an ELF executable or shared object")

// Inspect reads one file's hardening facts.
func Inspect(path string) (Facts, error) {
	f, err := os.Open(path)
	if err != nil {
		return Facts{}, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || !bytes.Equal(magic[:], []byte(elf.ELFMAG)) {
		return Facts{}, ErrNotProgram
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return Facts{}, fmt.Errorf("%s: %w", path, err)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return Facts{}, ErrNotProgram
	}
	flags, flags1 := dynFlags(ef)
	interp, relro, stack, nx := false, false, false, false
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp = true
		case elf.PT_GNU_RELRO:
			relro = true
		case elf.PT_GNU_STACK:
			stack = true
			nx = p.Flags&elf.PF_X == 0
		}
	}
	const df1PIE = 0x08000000 // DF_1_PIE
	fc := Facts{Path: path, Has: map[string]bool{}}
	fc.Executable = ef.Type == elf.ET_EXEC || interp || flags1&df1PIE != 0
	if fc.Executable {
		fc.Has[PIE] = ef.Type == elf.ET_DYN
	}
	bindNow := flags&uint64(elf.DF_BIND_NOW) != 0 || flags1&uint64(elf.DF_1_NOW) != 0 || hasTag(ef, elf.DT_BIND_NOW)
	fc.Has[RelroFull] = relro && bindNow
	fc.Has[NXStack] = stack && nx
	syms, _ := ef.DynamicSymbols()
	for _, s := range syms {
		switch {
		case s.Name == "__stack_chk_fail" || s.Name == "__stack_chk_guard":
			fc.Has[StackProtector] = true
		case strings.HasPrefix(s.Name, "__") && strings.HasSuffix(s.Name, "_chk") && s.Section == elf.SHN_UNDEF:
			fc.Has[Fortify] = true
		}
	}
	return fc, nil
}

// dynFlags returns DT_FLAGS and DT_FLAGS_1 (0 when absent).
func dynFlags(ef *elf.File) (flags, flags1 uint64) {
	if v, err := ef.DynValue(elf.DT_FLAGS); err == nil && len(v) > 0 {
		flags = v[0]
	}
	if v, err := ef.DynValue(elf.DT_FLAGS_1); err == nil && len(v) > 0 {
		flags1 = v[0]
	}
	return flags, flags1
}

func hasTag(ef *elf.File, tag elf.DynTag) bool {
	v, err := ef.DynValue(tag)
	return err == nil && len(v) > 0
}

// Share is one property's count over the files it applies to.
type Share struct {
	Total   int      `json:"total"`
	Have    int      `json:"have"`
	Missing []string `json:"missing"` // the first MaxNamed files without it, sorted
}

// Percent is Have as a percentage of Total (100 when Total is 0: nothing lacks it).
func (s Share) Percent() float64 {
	if s.Total == 0 {
		return 100
	}
	return 100 * float64(s.Have) / float64(s.Total)
}

// Report is the result of a Scan: how many programs were read and each property's share.
type Report struct {
	Executables   int              `json:"executables"`
	SharedObjects int              `json:"shared_objects"`
	Properties    map[string]Share `json:"properties"`
	Unreadable    []string         `json:"unreadable,omitempty"` // ELF files debug/elf refused, with why
}

// MaxNamed is how many files without a property a report names.
const MaxNamed = 15

// skipTrees are folders under the scanned roots that hold no userland programs.
var skipTrees = []string{"/usr/lib/modules", "/usr/lib/firmware", "/usr/lib/debug", "/usr/lib/.build-id"}

// Scan walks roots (missing ones are skipped), inspects every program once (symbolic links are
// not followed; hard links are read once), and reports each property's share. A program is a
// regular file that can be run (an execute bit) or loaded as a library (".so" in its name, as
// the loader, dlopen's plugins, PAM, NSS and Python's extension modules name them): most files
// under /usr/lib are neither (Python, Perl, data), and opening each of them to read its first
// bytes was most of a cold scan's time under TCG (the aarch64 stand-in, caches dropped: 46-52 s
// opening every file, 22-28 s opening programs only; the report the same).
func Scan(roots ...string) Report {
	r := Report{Properties: map[string]Share{}}
	missing := map[string][]string{}
	seen := map[[2]uint64]bool{}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				for _, s := range skipTrees {
					if path == s {
						return fs.SkipDir
					}
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil || info.Size() < 64 {
				return nil
			}
			if info.Mode()&0o111 == 0 && !strings.Contains(d.Name(), ".so") {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				id := [2]uint64{uint64(st.Dev), st.Ino}
				if seen[id] {
					return nil
				}
				seen[id] = true
			}
			fc, err := Inspect(path)
			if errors.Is(err, ErrNotProgram) {
				return nil
			}
			if err != nil {
				r.Unreadable = append(r.Unreadable, err.Error())
				return nil
			}
			if fc.Executable {
				r.Executables++
			} else {
				r.SharedObjects++
			}
			for _, p := range Properties {
				if p == PIE && !fc.Executable {
					continue
				}
				s := r.Properties[p]
				s.Total++
				if fc.Has[p] {
					s.Have++
				} else {
					missing[p] = append(missing[p], path)
				}
				r.Properties[p] = s
			}
			return nil
		})
	}
	for p, files := range missing {
		sort.Strings(files)
		s := r.Properties[p]
		s.Missing = files[:min(len(files), MaxNamed)]
		r.Properties[p] = s
	}
	return r
}

// Exports lists the symbols a shared object exports (defined, global or weak, default or
// protected visibility) as "name@VERSION" ("name" when unversioned), sorted, each once. A symbol
// exported under several versions (glibc's compatibility symbols) is listed once per version.
func Exports(path string) ([]string, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set := map[string]bool{}
	for _, s := range syms {
		bind, vis := elf.ST_BIND(s.Info), elf.ST_VISIBILITY(s.Other)
		if s.Section == elf.SHN_UNDEF || (bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) ||
			(vis != elf.STV_DEFAULT && vis != elf.STV_PROTECTED) || s.Name == "" {
			continue
		}
		name := s.Name
		if s.Version != "" {
			name += "@" + s.Version
		}
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// LibraryDirs are where FindLibrary looks, in order: the multiarch folders first (Debian), then
// lib64 (Fedora, Azure Linux), then lib.
var LibraryDirs = []string{
	"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
	"/usr/lib64", "/lib64", "/usr/lib", "/lib",
}

// FindLibrary returns the path of the library with this file name (a soname such as
// "libc.so.6") in LibraryDirs.
func FindLibrary(soname string) (string, error) {
	for _, d := range LibraryDirs {
		p := filepath.Join(d, soname)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", soname, strings.Join(LibraryDirs, ", "))
}
