package symbolize

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
	stacks  map[stackKey]stackEntry // recent stacks: a busy caller repeats its own
	stats   Stats
}

// stackKey identifies a stack of one process by a hash of its addresses;
// the entry keeps the addresses to rule out a collision.
type stackKey struct {
	pid  int
	hash uint64
}

type stackEntry struct {
	pcs    []uint64
	frames []event.Frame
}

// maxStacks bounds the stack cache; it starts over when full.
const maxStacks = 8192

// Stats counts what could not be read, so a missing name is explained.
type Stats struct {
	Frames      uint64 // frames symbolized
	Cached      uint64 // stacks answered from the cache of recent stacks
	Truncated   uint64 // stacks cut where a return address follows no call (code without frame pointers)
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
	return &Symbolizer{root: root, procs: make(map[int]*process), objects: make(map[objKey]*objEntry),
		stacks: make(map[stackKey]stackEntry)}
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
//
// A stack seen before in the same process (same addresses, same leafRet)
// gets the same frames, read from a cache: the returned slice is shared and
// must not be modified.
func (s *Symbolizer) Symbolize(pid int, pcs []uint64, leafRet uint64) []event.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := stackKey{pid, hashStack(pcs, leafRet)}
	if e, ok := s.stacks[key]; ok && len(e.pcs) == len(pcs)+1 && e.pcs[0] == leafRet && equal(e.pcs[1:], pcs) {
		s.stats.Frames += uint64(len(e.frames))
		s.stats.Cached++
		return e.frames
	}
	frames := s.symbolize(pid, pcs, leafRet)
	if len(s.stacks) >= maxStacks {
		clear(s.stacks)
	}
	s.stacks[key] = stackEntry{pcs: append([]uint64{leafRet}, pcs...), frames: frames}
	return frames
}

func hashStack(pcs []uint64, leafRet uint64) uint64 {
	// FNV-1a over the words.
	h := (uint64(14695981039346656037) ^ leafRet) * 1099511628211
	for _, w := range pcs {
		h ^= w
		h *= 1099511628211
	}
	return h
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s *Symbolizer) symbolize(pid int, pcs []uint64, leafRet uint64) []event.Frame {
	p := s.process(pid, false)
	mem := s.openMem(pid)
	if mem != nil {
		defer mem.Close()
	}
	if leafRet != 0 && len(pcs) > 0 && (len(pcs) < 2 || pcs[1] != leafRet) {
		if m, ok := find(p.maps, leafRet-1); ok && m.Exec() && m.File() && afterCall(mem, leafRet) == callYes {
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
			// Code without frame pointers leaves the walk reading
			// whatever its frame register held: a "return address" that
			// no call precedes is such garbage, and so is all above it.
			if afterCall(mem, pc) == callNo {
				s.stats.Truncated++
				break
			}
		}
		m, ok := find(p.maps, look)
		if !ok {
			p = s.process(pid, true)
			m, ok = find(p.maps, look)
		}
		if !ok && i > 0 {
			// A return address outside every mapping is garbage too.
			s.stats.Truncated++
			break
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

// openMem opens the memory of pid to check return addresses; nil when it
// cannot be read (the process is gone) or the checks do not apply (they
// know x86-64 instructions only).
func (s *Symbolizer) openMem(pid int) *os.File {
	if runtime.GOARCH != "amd64" {
		return nil
	}
	f, err := os.Open(filepath.Join(s.root, strconv.Itoa(pid), "mem"))
	if err != nil {
		return nil
	}
	return f
}

type callCheck uint8

const (
	callUnknown callCheck = iota // memory not readable there: no verdict
	callYes
	callNo
)

// afterCall says whether the x86-64 instruction that ends at ret in the
// process memory mem is a call (see IsCallBefore).
func afterCall(mem *os.File, ret uint64) callCheck {
	var b [7]byte
	if mem == nil || ret < uint64(len(b)) || ret > 1<<63 {
		return callUnknown
	}
	if _, err := mem.ReadAt(b[:], int64(ret)-int64(len(b))); err != nil {
		return callUnknown
	}
	if IsCallBefore(b) {
		return callYes
	}
	return callNo
}

// IsCallBefore says whether the 7 bytes before a return address end with an
// x86-64 call instruction: call rel32 (e8), or call through memory or a
// register (ff /2) in each addressing form: register, [reg], [SIB],
// [reg+disp8], [SIB+disp8], [reg+disp32], [SIB+disp32], [rip+disp32]. A
// REX prefix before ff changes no length that matters here.
func IsCallBefore(b [7]byte) bool {
	modrm := func(m byte, mod byte) bool { return m>>6 == mod && (m>>3)&7 == 2 }
	switch {
	case b[2] == 0xe8: // call rel32
		return true
	case b[5] == 0xff && modrm(b[6], 3): // call *%reg
		return true
	case b[5] == 0xff && modrm(b[6], 0) && b[6]&7 != 4 && b[6]&7 != 5: // call *(%reg)
		return true
	case b[4] == 0xff && modrm(b[5], 0) && b[5]&7 == 4: // call *(SIB)
		return true
	case b[4] == 0xff && modrm(b[5], 1) && b[5]&7 != 4: // call *d8(%reg)
		return true
	case b[3] == 0xff && modrm(b[4], 1) && b[4]&7 == 4: // call *d8(SIB)
		return true
	case b[1] == 0xff && modrm(b[2], 0) && b[2]&7 == 5: // call *d32(%rip)
		return true
	case b[1] == 0xff && modrm(b[2], 2) && b[2]&7 != 4: // call *d32(%reg)
		return true
	case b[0] == 0xff && modrm(b[1], 2) && b[1]&7 == 4: // call *d32(SIB)
		return true
	}
	return false
}
