package symbolize

import (
	"bytes"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// Object is the symbol information of one mapped ELF file.
type Object struct {
	BuildID string // GNU build ID (hex), or Go's build ID, "" if none
	loads   []elf.ProgHeader
	gotab   *gosym.Table
	syms    []elfSym // FUNC symbols with a size, sorted by address
	strtab  []byte   // names of syms
	isGo    bool
	lines   *dwarf.Data // C/C++ built with -g: file and line of an address
}

// maxDWARF bounds the debug information read for file and line: a large
// C++ program's runs to gigabytes, and it is read on the path of a stack.
const maxDWARF = 32 << 20

// readDWARF keeps the line tables of a file built with -g (not Go: its
// pclntab already says more).
func (o *Object) readDWARF(f *elf.File) {
	info, lines := f.Section(".debug_info"), f.Section(".debug_line")
	if info == nil || lines == nil || info.Size+lines.Size > maxDWARF || f.Section(".zdebug_info") != nil {
		return
	}
	if d, err := f.DWARF(); err == nil {
		o.lines = d
	}
}

// dwarfLine finds the file and line of va in the line table of the
// compilation unit that covers it.
func (o *Object) dwarfLine(va uint64) (string, int) {
	r := o.lines.Reader()
	for n := 0; n < 1<<16; n++ {
		e, err := r.Next()
		if err != nil || e == nil {
			return "", 0
		}
		if e.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		r.SkipChildren()
		ranges, err := o.lines.Ranges(e)
		if err != nil {
			continue
		}
		for _, rg := range ranges {
			if va < rg[0] || va >= rg[1] {
				continue
			}
			lr, err := o.lines.LineReader(e)
			if err != nil || lr == nil {
				return "", 0
			}
			var le dwarf.LineEntry
			if lr.SeekPC(va, &le) != nil || le.File == nil {
				return "", 0
			}
			return le.File.Name, le.Line
		}
	}
	return "", 0
}

// readSymbols reads the function symbols of the first section of type typ
// straight from its bytes (Elf32_Sym or Elf64_Sym). ok is false when the
// file has no such section.
func (o *Object) readSymbols(f *elf.File, typ elf.SectionType) (ok bool, err error) {
	var sec *elf.Section
	for _, s := range f.Sections {
		if s.Type == typ {
			sec = s
			break
		}
	}
	if sec == nil || sec.Link == 0 || int(sec.Link) >= len(f.Sections) {
		return false, nil
	}
	data, err := sec.Data()
	if err != nil {
		return false, fmt.Errorf("read ELF symbols: %w", err)
	}
	str, err := f.Sections[sec.Link].Data()
	if err != nil {
		return false, fmt.Errorf("read ELF symbol names: %w", err)
	}
	size := 24
	if f.Class == elf.ELFCLASS32 {
		size = 16
	}
	bo := f.ByteOrder
	for off := size; off+size <= len(data); off += size { // entry 0 is the null symbol
		e := data[off : off+size]
		var name uint32
		var info byte
		var shndx uint16
		var value, sz uint64
		if size == 24 {
			name, info, shndx = bo.Uint32(e[0:]), e[4], bo.Uint16(e[6:])
			value, sz = bo.Uint64(e[8:]), bo.Uint64(e[16:])
		} else {
			name, value, sz = bo.Uint32(e[0:]), uint64(bo.Uint32(e[4:])), uint64(bo.Uint32(e[8:]))
			info, shndx = e[12], bo.Uint16(e[14:])
		}
		if elf.ST_TYPE(info) != elf.STT_FUNC || value == 0 || sz == 0 || elf.SectionIndex(shndx) == elf.SHN_UNDEF || int(name) >= len(str) {
			continue
		}
		if len(o.syms) >= maxSymbols {
			break
		}
		o.syms = append(o.syms, elfSym{addr: value, size: sz, name: name})
	}
	o.strtab = str
	return true, nil
}

// symName is the NUL-terminated name at off in the string table.
func (o *Object) symName(off uint32) string {
	b := o.strtab[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}

// elfSym is a function symbol; its name stays in the string table until
// asked for (Debian's node has 110,000 of them: making each a string cost
// more than the rest of reading the file).
type elfSym struct {
	addr, size uint64
	name       uint32 // offset in the object's strtab
}

// maxSymbols bounds what one object's symbol tables may hold in memory.
const maxSymbols = 1 << 21

// OpenObject reads the symbol tables of the ELF file r. A file debug/elf
// cannot read, or whose tables are corrupt, is an error, never a panic:
// the file belongs to the watched process, which may be hostile.
func OpenObject(r io.ReaderAt) (obj *Object, err error) {
	defer func() {
		if p := recover(); p != nil {
			obj, err = nil, fmt.Errorf("read ELF file: corrupt (%v)", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF file: %w", err)
	}
	defer f.Close()
	o := &Object{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			o.loads = append(o.loads, p.ProgHeader)
		}
	}
	if len(o.loads) == 0 {
		return nil, errors.New("read ELF file: no loadable segment")
	}
	o.BuildID = buildID(f)
	if sec := f.Section(".gopclntab"); sec != nil {
		// Go keeps the pclntab even when stripped (-ldflags=-s): it is the
		// runtime's own table of functions, files and lines.
		if err := o.readGo(f, sec); err == nil {
			o.isGo = true
		}
	}
	if !o.isGo {
		o.readDWARF(f)
	}
	// .symtab holds every function of an unstripped file; .dynsym only the
	// exported ones, all also in .symtab: read the first that exists.
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		if ok, err := o.readSymbols(f, typ); err != nil {
			return nil, err
		} else if ok {
			break
		}
	}
	slices.SortFunc(o.syms, func(a, b elfSym) int {
		if c := cmp.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.size, b.size)
	})
	return o, nil
}

func (o *Object) readGo(f *elf.File, pcln *elf.Section) error {
	data, err := pcln.Data()
	if err != nil {
		return err
	}
	text := f.Section(".text")
	if text == nil {
		return errors.New("no .text section")
	}
	var symtab []byte
	if s := f.Section(".gosymtab"); s != nil {
		symtab, _ = s.Data()
	}
	t, err := gosym.NewTable(symtab, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return err
	}
	o.gotab = t
	return nil
}

func buildID(f *elf.File) string {
	for _, name := range []string{".note.gnu.build-id", ".note.go.buildid"} {
		sec := f.Section(name)
		if sec == nil || sec.Size > 4096 {
			continue
		}
		b, err := sec.Data()
		if err != nil || len(b) < 16 {
			continue
		}
		// An ELF note: namesz, descsz, type, name (padded to 4), desc.
		namesz := int(f.ByteOrder.Uint32(b[0:]))
		descsz := int(f.ByteOrder.Uint32(b[4:]))
		off := 12 + (namesz+3)&^3
		if namesz < 0 || descsz <= 0 || off+descsz > len(b) || off < 12 {
			continue
		}
		desc := b[off : off+descsz]
		if name == ".note.go.buildid" {
			return string(desc)
		}
		return hex.EncodeToString(desc)
	}
	return ""
}

// vaddr turns a file offset into the ELF virtual address it is loaded at.
func (o *Object) vaddr(fileOff uint64) (uint64, bool) {
	for _, p := range o.loads {
		if fileOff >= p.Off && fileOff-p.Off < p.Filesz {
			return fileOff - p.Off + p.Vaddr, true
		}
	}
	return 0, false
}

// lookup names the code at ELF virtual address va: function, and file and
// line where the tables say. ok is false when no table covers va.
func (o *Object) lookup(va uint64) (fn, file string, line int, ok bool) {
	defer func() {
		if recover() != nil {
			fn, file, line, ok = "", "", 0, false
		}
	}()
	if o.gotab != nil {
		if f, l, g := o.gotab.PCToLine(va); g != nil {
			return g.Name, f, l, true
		}
	}
	i := sort.Search(len(o.syms), func(i int) bool { return o.syms[i].addr > va })
	// The symbols starting at or below va; the innermost that covers it wins
	// (a size check, so an address past a function's end is never named
	// after it).
	for j := i - 1; j >= 0 && j >= i-16; j-- {
		s := o.syms[j]
		if va-s.addr < s.size {
			if o.lines != nil {
				file, line = o.dwarfLine(va)
			}
			return o.symName(s.name), file, line, true
		}
	}
	return "", "", 0, false
}
