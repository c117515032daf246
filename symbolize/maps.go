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

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64 // [Start, End) in the process's address space
	Perms      string // "r-xp"
	Offset     uint64 // file offset of Start
	Dev        string // "08:01"
	Inode      uint64
	Path       string // file, "[vdso]", "[heap]", "" for anonymous memory
}

// Exec says whether the mapping holds code.
func (m Mapping) Exec() bool { return len(m.Perms) >= 3 && m.Perms[2] == 'x' }

// File says whether the mapping is backed by a file.
func (m Mapping) File() bool { return m.Inode != 0 && m.Path != "" && m.Path[0] != '[' }

// Limits on what is read from a process: its maps and perf map are its own
// to write, so they may be huge or hostile.
const (
	maxMappings  = 1 << 16
	maxLineBytes = 64 << 10
)

// ParseMapsLine reads one line of /proc/PID/maps.
func ParseMapsLine(line string) (Mapping, error) {
	var m Mapping
	rest := line
	field := func() string {
		rest = strings.TrimLeft(rest, " ")
		f, r, _ := strings.Cut(rest, " ")
		rest = r
		return f
	}
	rng, perms, off, dev, ino := field(), field(), field(), field(), field()
	lo, hi, ok := strings.Cut(rng, "-")
	if !ok {
		return m, fmt.Errorf("parse maps line %q: no address range", trunc(line))
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: start: %w", trunc(line), err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: end: %w", trunc(line), err)
	}
	if m.End <= m.Start {
		return m, fmt.Errorf("parse maps line %q: empty range", trunc(line))
	}
	if len(perms) != 4 {
		return m, fmt.Errorf("parse maps line %q: permissions %q", trunc(line), perms)
	}
	m.Perms = perms
	if m.Offset, err = strconv.ParseUint(off, 16, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: offset: %w", trunc(line), err)
	}
	if !strings.Contains(dev, ":") {
		return m, fmt.Errorf("parse maps line %q: device %q", trunc(line), dev)
	}
	m.Dev = dev
	if m.Inode, err = strconv.ParseUint(ino, 10, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: inode: %w", trunc(line), err)
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

// ParseMaps reads /proc/PID/maps, sorted by start address. At most
// maxMappings lines are read; a malformed line is an error.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	var ms []Mapping
	for sc.Scan() {
		if len(ms) >= maxMappings {
			return ms, errors.New("parse maps: more than 65536 mappings")
		}
		if sc.Text() == "" {
			continue
		}
		m, err := ParseMapsLine(sc.Text())
		if err != nil {
			return ms, err
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return ms, fmt.Errorf("parse maps: %w", err)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Start < ms[j].Start })
	return ms, nil
}

// find returns the mapping holding addr.
func find(ms []Mapping, addr uint64) (Mapping, bool) {
	i := sort.Search(len(ms), func(i int) bool { return ms[i].End > addr })
	if i < len(ms) && ms[i].Start <= addr {
		return ms[i], true
	}
	return Mapping{}, false
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
