package symbolize

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/egress-dev/egress/event"
)

// Modules named in frames that have no file behind them.
const (
	ModuleJIT     = "[jit]"     // anonymous code named by a perf map
	ModuleAnon    = "[anon]"    // anonymous code no perf map names
	ModuleUnknown = "[unknown]" // an address outside every mapping
)

// Symbolizer symbolizes the stacks of live processes. It is safe for
// concurrent use.
type Symbolizer struct {
	root string // "/proc"

	mu      sync.Mutex // guards the fields below
	procs   map[int]*process
	objects map[objKey]*objEntry
	stats   Stats
}

// Stats counts what could not be read, so a missing name is explained.
type Stats struct {
	Frames      uint64 // frames symbolized
	Unnamed     uint64 // frames no table named (module+offset only)
	MapsErrors  uint64 // /proc/PID/maps unreadable (process gone before its first stack)
	ObjectsBad  uint64 // mapped files that could not be read as ELF
	ProcsForgot uint64 // process entries dropped to stay bounded
}

type process struct {
	maps    []Mapping
	perf    *PerfMap
	perfLen int64 // size of the perf map when read
	nsPid   int
}

type objKey struct {
	dev   string
	inode uint64
}

type objEntry struct {
	obj *Object // nil when the file could not be read
}

// Bounds on the caches: a host-wide watch sees many processes.
const (
	maxProcs   = 1024
	maxObjects = 512
)

// New returns a Symbolizer reading /proc.
func New() *Symbolizer { return NewAt("/proc") }

// NewAt returns a Symbolizer reading the proc file system at root (tests).
func NewAt(root string) *Symbolizer {
	return &Symbolizer{root: root, procs: make(map[int]*process), objects: make(map[objKey]*objEntry)}
}

// Stats returns the counters so far.
func (s *Symbolizer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Symbolize turns the return addresses pcs of a thread of pid (innermost
// first, as bpf_get_stack gives them) into frames. It reads the process's
// mappings the first time (and again when an address is outside all of
// them); mappings stay known after the process exits.
//
// leafRet, when not 0, is the word at the thread's stack pointer (amd64):
// if the innermost function is a frameless leaf (libc's syscall wrappers),
// it is the return address into its caller, which the frame-pointer walk
// skipped. It is added as the second frame only when it is not already
// there and the bytes before it in the live process are a call instruction.
func (s *Symbolizer) Symbolize(pid int, pcs []uint64, leafRet uint64) []event.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.process(pid, false)
	if leafRet != 0 && len(pcs) > 0 && (len(pcs) < 2 || pcs[1] != leafRet) {
		if m, ok := find(p.maps, leafRet-1); ok && m.Exec() && m.File() && s.afterCall(pid, leafRet) {
			pcs = append([]uint64{pcs[0], leafRet}, pcs[1:]...)
		}
	}
	frames := make([]event.Frame, 0, len(pcs))
	for i, pc := range pcs {
		// A caller's address is the return address, one past its call:
		// look up the call instruction itself.
		look := pc
		if i > 0 && pc > 0 {
			look = pc - 1
		}
		m, ok := find(p.maps, look)
		if !ok {
			p = s.process(pid, true)
			m, ok = find(p.maps, look)
		}
		frames = append(frames, s.frame(pid, p, m, ok, look))
	}
	s.stats.Frames += uint64(len(frames))
	return frames
}

func (s *Symbolizer) frame(pid int, p *process, m Mapping, mapped bool, addr uint64) event.Frame {
	switch {
	case !mapped:
		s.stats.Unnamed++
		return event.Frame{Module: ModuleUnknown, Offset: addr}
	case m.File():
		obj := s.object(pid, m)
		if obj != nil {
			if va, ok := obj.vaddr(addr - m.Start + m.Offset); ok {
				fn, file, line, named := obj.lookup(va)
				if !named {
					s.stats.Unnamed++
				}
				return event.Frame{Function: fn, File: file, Line: line, Module: m.Path, Offset: va}
			}
		}
		s.stats.Unnamed++
		return event.Frame{Module: m.Path, Offset: addr - m.Start + m.Offset}
	case m.Path == "" || strings.HasPrefix(m.Path, "[anon"):
		// JIT code: the runtime's perf map names it, if it writes one.
		if sym, ok := s.perfSymbol(pid, p, addr); ok {
			fn, file, line := jitName(sym.Name)
			return event.Frame{Function: fn, File: file, Line: line, Module: ModuleJIT, Offset: addr}
		}
		s.stats.Unnamed++
		return event.Frame{Module: ModuleAnon, Offset: addr}
	}
	s.stats.Unnamed++
	return event.Frame{Module: m.Path, Offset: addr - m.Start}
}

// process returns what is known of pid, reading its maps when unknown or
// when reread is set and the process still lives.
func (s *Symbolizer) process(pid int, reread bool) *process {
	p := s.procs[pid]
	if p != nil && !reread {
		return p
	}
	f, err := os.Open(filepath.Join(s.root, strconv.Itoa(pid), "maps"))
	if err != nil {
		if p == nil {
			s.stats.MapsErrors++
			p = &process{}
			s.keep(pid, p)
		}
		return p // gone: keep what was known
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil && len(ms) == 0 {
		s.stats.MapsErrors++
	}
	if p == nil {
		p = &process{nsPid: nsPid(s.root, pid)}
		s.keep(pid, p)
	}
	p.maps = ms
	return p
}

func (s *Symbolizer) keep(pid int, p *process) {
	if len(s.procs) >= maxProcs {
		s.stats.ProcsForgot += uint64(len(s.procs))
		clear(s.procs)
	}
	s.procs[pid] = p
}

// nsPid is pid as the process sees itself (the last NSpid field): the
// number a runtime puts in its perf map's name inside a pid namespace.
func nsPid(root string, pid int) int {
	f, err := os.Open(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return pid
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				if n, err := strconv.Atoi(fs[len(fs)-1]); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	return pid
}

// object returns the symbols of the file behind m, read once per device
// and inode (nil when it cannot be read).
func (s *Symbolizer) object(pid int, m Mapping) *Object {
	k := objKey{m.Dev, m.Inode}
	if e, ok := s.objects[k]; ok {
		return e.obj
	}
	if len(s.objects) >= maxObjects {
		clear(s.objects)
	}
	obj, err := s.openObject(pid, m)
	if err != nil {
		s.stats.ObjectsBad++
	}
	s.objects[k] = &objEntry{obj: obj}
	return obj
}

func (s *Symbolizer) openObject(pid int, m Mapping) (*Object, error) {
	// map_files reaches the very file mapped, even when it was deleted or
	// lives in another mount namespace; the process's root is the fallback.
	paths := []string{
		filepath.Join(s.root, strconv.Itoa(pid), "map_files", fmt.Sprintf("%x-%x", m.Start, m.End)),
		filepath.Join(s.root, strconv.Itoa(pid), "root", strings.TrimSuffix(m.Path, " (deleted)")),
	}
	var err error
	for _, path := range paths {
		var f *os.File
		f, err = os.Open(path)
		if err != nil {
			continue
		}
		var obj *Object
		obj, err = OpenObject(f)
		f.Close()
		if err == nil {
			return obj, nil
		}
	}
	return nil, fmt.Errorf("symbols of %s: %w", m.Path, err)
}

// perfSymbol looks addr up in pid's perf map, rereading it when it grew.
func (s *Symbolizer) perfSymbol(pid int, p *process, addr uint64) (PerfSymbol, bool) {
	if sym, ok := p.perf.Lookup(addr); ok {
		return sym, true
	}
	n := p.nsPid
	if n == 0 {
		n = pid
	}
	path := filepath.Join(s.root, strconv.Itoa(pid), "root", "tmp", fmt.Sprintf("perf-%d.map", n))
	f, err := os.Open(path)
	if err != nil {
		return PerfSymbol{}, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == p.perfLen {
		return PerfSymbol{}, false
	}
	pm, _ := ParsePerfMap(f)
	p.perf, p.perfLen = pm, st.Size()
	return p.perf.Lookup(addr)
}

// afterCall says whether the x86-64 instruction that ends at ret in pid's
// memory is a call: e8 rel32, ff 15 disp32 (call through the GOT), or ff /2
// on a register (with or without a REX prefix).
func (s *Symbolizer) afterCall(pid int, ret uint64) bool {
	f, err := os.Open(filepath.Join(s.root, strconv.Itoa(pid), "mem"))
	if err != nil {
		return false
	}
	defer f.Close()
	var b [7]byte
	if ret < uint64(len(b)) || ret > 1<<63 {
		return false
	}
	if _, err := f.ReadAt(b[:], int64(ret)-int64(len(b))); err != nil {
		return false
	}
	return IsCallBefore(b)
}

// IsCallBefore says whether the 7 bytes before a return address end with a
// call instruction.
func IsCallBefore(b [7]byte) bool {
	switch {
	case b[2] == 0xe8: // call rel32
		return true
	case b[1] == 0xff && b[2] == 0x15: // call *disp32(%rip)
		return true
	case b[5] == 0xff && b[6] >= 0xd0 && b[6] <= 0xd7: // call *%reg (REX.B or not)
		return true
	}
	return false
}
