package symbolize

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// PerfSymbol is one line of a perf map (/tmp/perf-PID.map): JIT code at
// [Start, Start+Size) named Name, as the runtime wrote it.
type PerfSymbol struct {
	Start, Size uint64
	Name        string
	seq         int // line number: a later line wins where code was moved or replaced
}

// maxPerfSymbols bounds a perf map (Node writes one line per compiled function).
const maxPerfSymbols = 1 << 20

// ParsePerfMapLine reads "START SIZE NAME" (hex, with or without 0x).
func ParsePerfMapLine(line string) (PerfSymbol, error) {
	a, rest, ok1 := strings.Cut(line, " ")
	b, name, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return PerfSymbol{}, fmt.Errorf("parse perf map line %q: want START SIZE NAME", trunc(line))
	}
	start, err := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 64)
	if err != nil {
		return PerfSymbol{}, fmt.Errorf("parse perf map line %q: start: %w", trunc(line), err)
	}
	size, err := strconv.ParseUint(strings.TrimPrefix(b, "0x"), 16, 64)
	if err != nil {
		return PerfSymbol{}, fmt.Errorf("parse perf map line %q: size: %w", trunc(line), err)
	}
	if size == 0 || start+size < start {
		return PerfSymbol{}, fmt.Errorf("parse perf map line %q: bad size", trunc(line))
	}
	return PerfSymbol{Start: start, Size: size, Name: strings.TrimSpace(name)}, nil
}

// PerfMap is a parsed perf map, sorted by start address.
type PerfMap struct {
	syms []PerfSymbol
	// Skipped counts malformed lines (a runtime may be writing the last
	// one as it is read).
	Skipped int
}

// ParsePerfMap reads a perf map. Malformed lines are skipped and counted;
// reading stops with an error after maxPerfSymbols lines.
func ParsePerfMap(r io.Reader) (*PerfMap, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	pm := &PerfMap{}
	var err error
	for n := 0; sc.Scan(); n++ {
		if len(pm.syms) >= maxPerfSymbols {
			err = errors.New("parse perf map: more than 1048576 symbols")
			break
		}
		s, e := ParsePerfMapLine(sc.Text())
		if e != nil {
			pm.Skipped++
			continue
		}
		s.seq = n
		pm.syms = append(pm.syms, s)
	}
	if err == nil && sc.Err() != nil {
		err = fmt.Errorf("parse perf map: %w", sc.Err())
	}
	sort.SliceStable(pm.syms, func(i, j int) bool { return pm.syms[i].Start < pm.syms[j].Start })
	return pm, err
}

// Lookup returns the symbol holding addr; where entries overlap (code moved
// or recompiled), the one written last.
func (p *PerfMap) Lookup(addr uint64) (PerfSymbol, bool) {
	if p == nil {
		return PerfSymbol{}, false
	}
	i := sort.Search(len(p.syms), func(i int) bool { return p.syms[i].Start > addr })
	var best PerfSymbol
	found := false
	// Entries before i start at or below addr; only a few overlap it.
	for j := i - 1; j >= 0 && j >= i-64; j-- {
		s := p.syms[j]
		if addr-s.Start < s.Size && (!found || s.seq > best.seq) {
			best, found = s, true
		}
	}
	return best, found
}

// Len returns the number of symbols.
func (p *PerfMap) Len() int { return len(p.syms) }

// jitName splits a JIT symbol into function, file and line, for the forms
// V8 writes ("JS:~phoneHome /app/phone.js:3:19", "LazyCompile:*f file:///a.js:1:2")
// and CPython's ("py::phone_home:/app/phone.py"). Anything else is the
// function name as written.
func jitName(name string) (fn, file string, line int) {
	if kind, rest, ok := strings.Cut(name, ":"); ok && v8Kinds[kind] {
		rest = strings.TrimLeft(rest, "~*^+-")
		f, loc, hasLoc := strings.Cut(rest, " ")
		if !hasLoc {
			return f, "", 0
		}
		// loc is FILE:LINE:COLUMN, FILE may hold colons (file://, node:net).
		file, line = splitLineCol(loc)
		if f == "" {
			f = "(anonymous)"
		}
		return f, file, line
	}
	if rest, ok := strings.CutPrefix(name, "py::"); ok {
		f, file, _ := strings.Cut(rest, ":")
		return f, file, 0
	}
	return name, "", 0
}

var v8Kinds = map[string]bool{"JS": true, "LazyCompile": true, "Function": true, "InterpretedFunction": true, "Script": true}

func splitLineCol(loc string) (string, int) {
	file := loc
	// Strip ":COL" then ":LINE" when they are numbers.
	var nums []int
	for k := 0; k < 2; k++ {
		i := strings.LastIndexByte(file, ':')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(file[i+1:])
		if err != nil || n < 0 {
			break
		}
		nums = append(nums, n)
		file = file[:i]
	}
	switch len(nums) {
	case 2:
		return file, nums[1]
	case 1:
		return file, nums[0]
	}
	return file, 0
}
