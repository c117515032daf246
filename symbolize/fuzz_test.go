package symbolize

import (
	"bytes"
	"os"
	"testing"
)

func FuzzParseMaps(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/maps"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("55d0c6a00000-55d0c6a22000 r-xp 00001000 08:01 1234 /usr/bin/app (deleted)\n7f00-8f00 rwxp 0 00:00 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.End <= m.Start {
				t.Fatalf("empty mapping accepted: %+v", m)
			}
		}
	})
}

func FuzzParsePerfMap(f *testing.F) {
	f.Add([]byte("7f0000001000 100 JS:~phoneHome /app/phone.js:15:3\n0x7f0000002000 0x40 LazyCompile:*connect node:net:227:17\n"))
	f.Add([]byte("ffffffffffffffff 2 x\n1 ffffffffffffffff y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, _ := ParsePerfMap(bytes.NewReader(b))
		for _, s := range pm.syms {
			if got, ok := pm.Lookup(s.Start); !ok || s.Start-got.Start >= got.Size {
				t.Fatalf("symbol %+v not found at its start (got %+v, %v)", s, got, ok)
			}
			jitName(s.Name)
		}
	})
}

// FuzzOpenObject feeds mangled ELF files to the symbol reader: a watched
// process maps files of its choosing, so reading them must never panic.
func FuzzOpenObject(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil && len(b) > 1<<16 {
			f.Add(b[:1<<16])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		obj, err := OpenObject(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, va := range []uint64{0, 0x401000, 0x7fffffff} {
			obj.lookup(va)
			obj.vaddr(va)
		}
	})
}
