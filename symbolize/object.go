package symbolize

import (
	"debug/elf"
	"debug/gosym"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Object is the symbol information of one mapped ELF file.
type Object struct {
	BuildID string // GNU build ID (hex), or Go's build ID, "" if none
	loads   []elf.ProgHeader
	gotab   *gosym.Table
	syms    []elfSym // FUNC symbols with a size, sorted by address
	isGo    bool
}

type elfSym struct {
	addr, size uint64
	name       string
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
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := read()
		if err != nil {
			continue // no such table
		}
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Size == 0 || s.Section == elf.SHN_UNDEF {
				continue
			}
			if len(o.syms) >= maxSymbols {
				break
			}
			o.syms = append(o.syms, elfSym{addr: s.Value, size: s.Size, name: s.Name})
		}
	}
	sort.Slice(o.syms, func(i, j int) bool {
		if o.syms[i].addr != o.syms[j].addr {
			return o.syms[i].addr < o.syms[j].addr
		}
		return o.syms[i].size < o.syms[j].size
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
			return s.name, "", 0, true
		}
	}
	return "", "", 0, false
}
