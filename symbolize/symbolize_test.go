package symbolize

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
)

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line string
		want Mapping
		err  bool
	}{
		{line: "55d0c6a00000-55d0c6a22000 r-xp 00001000 08:01 1234                       /usr/bin/my app (deleted)",
			want: Mapping{Start: 0x55d0c6a00000, End: 0x55d0c6a22000, Perms: "r-xp", Offset: 0x1000, Dev: "08:01", Inode: 1234, Path: "/usr/bin/my app (deleted)"}},
		{line: "7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]",
			want: Mapping{Start: 0x7ffd1000, End: 0x7ffd3000, Perms: "r-xp", Dev: "00:00", Path: "[vdso]"}},
		{line: "7f00-8f00 rwxp 00000000 00:00 0 ",
			want: Mapping{Start: 0x7f00, End: 0x8f00, Perms: "rwxp", Dev: "00:00"}},
		{line: "zz-8f00 rwxp 00000000 00:00 0", err: true},
		{line: "9000-8000 r-xp 00000000 00:00 0", err: true},
		{line: "8000-9000 r-x 00000000 00:00 0", err: true},
		{line: "8000-9000 r-xp 00000000 0000 0", err: true},
		{line: "8000-9000", err: true},
		{line: "", err: true},
	}
	for _, tt := range tests {
		got, err := ParseMapsLine(tt.line)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v, want error %v", tt.line, err, tt.err)
			continue
		}
		if !tt.err {
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.line, diff)
			}
		}
	}
}

func TestParseMapsSelf(t *testing.T) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(TestParseMapsSelf).Pointer()
	m, ok := find(ms, uint64(pc))
	if !ok || !m.Exec() || !m.File() {
		t.Fatalf("this test's code at %#x is in %+v (found %v), want an executable file mapping", pc, m, ok)
	}
}

func TestPerfMap(t *testing.T) {
	in := "7f0000001000 100 JS:~phoneHome /app/phone.js:15:3\n" +
		"0x7f0000002000 0x40 LazyCompile:*connect node:net:227:17\n" +
		"garbage line\n" +
		"7f0000001080 10 JS:^moved /app/x.js:2:1\n" + // later, overlapping: wins
		"7f0000003000 0 zero size\n"
	pm, err := ParsePerfMap(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if pm.Len() != 3 || pm.Skipped != 2 {
		t.Errorf("%d symbols, %d skipped, want 3 and 2", pm.Len(), pm.Skipped)
	}
	for _, tt := range []struct {
		addr uint64
		want string
	}{
		{0x7f0000001000, "JS:~phoneHome /app/phone.js:15:3"},
		{0x7f0000001084, "JS:^moved /app/x.js:2:1"},
		{0x7f00000010ff, "JS:~phoneHome /app/phone.js:15:3"},
		{0x7f0000001100, ""},
		{0x7f000000203f, "LazyCompile:*connect node:net:227:17"},
		{0x7f0000000fff, ""},
	} {
		s, ok := pm.Lookup(tt.addr)
		if ok != (tt.want != "") || s.Name != tt.want {
			t.Errorf("Lookup(%#x) = %q, %v; want %q", tt.addr, s.Name, ok, tt.want)
		}
	}
}

func TestJITName(t *testing.T) {
	for _, tt := range []struct {
		in, fn, file string
		line         int
	}{
		{"JS:~phoneHome /app/phone.js:15:3", "phoneHome", "/app/phone.js", 15},
		{"JS:*connect node:net:227:17", "connect", "node:net", 227},
		{"LazyCompile:~f file:///a/b.mjs:1:2", "f", "file:///a/b.mjs", 1},
		{"JS:~ /app/x.js:3:1", "(anonymous)", "/app/x.js", 3},
		{"Builtin:ArrayPush", "Builtin:ArrayPush", "", 0},
		{"py::phone_home:/app/phone.py", "phone_home", "/app/phone.py", 0},
		{"JS:~Socket.connect", "Socket.connect", "", 0},
	} {
		fn, file, line := jitName(tt.in)
		if fn != tt.fn || file != tt.file || line != tt.line {
			t.Errorf("jitName(%q) = %q %q %d, want %q %q %d", tt.in, fn, file, line, tt.fn, tt.file, tt.line)
		}
	}
}

func TestIsCallBefore(t *testing.T) {
	for _, tt := range []struct {
		b    [7]byte
		want bool
	}{
		{[7]byte{0, 0, 0xe8, 1, 2, 3, 4}, true},       // call rel32
		{[7]byte{0, 0xff, 0x15, 1, 2, 3, 4}, true},    // call *x(%rip)
		{[7]byte{0, 0, 0, 0, 0x41, 0xff, 0xd3}, true}, // call *%r11
		{[7]byte{0, 0, 0, 0, 0, 0xff, 0xd0}, true},    // call *%rax
		{[7]byte{0x48, 0x89, 0xe5, 0x5d, 0xc3, 0x90, 0x90}, false},
		{[7]byte{}, false},
	} {
		if got := IsCallBefore(tt.b); got != tt.want {
			t.Errorf("IsCallBefore(% x) = %v, want %v", tt.b, got, tt.want)
		}
	}
}

//go:noinline
func knownFunction() uintptr {
	pc, _, _, _ := runtime.Caller(0)
	return pc
}

// fakeProc lays out a proc root for pid 7 whose maps map this test binary
// as the kernel does (its PT_LOAD segments at their link addresses, which a
// non-PIE Go test binary runs at), plus an anonymous JIT region named by a
// perf map.
func fakeProc(t *testing.T) (root string, exe string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		t.Skipf("test binary is %v, not a fixed-address executable", f.Type)
	}
	root = t.TempDir()
	pdir := filepath.Join(root, "7")
	if err := os.MkdirAll(filepath.Join(pdir, "root", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(pdir, "root", "exe")); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		perm := "r--p"
		if p.Flags&elf.PF_X != 0 {
			perm = "r-xp"
		}
		start := p.Vaddr &^ 0xfff
		fmt.Fprintf(&b, "%x-%x %s %08x 00:2a 99 /exe\n", start, (p.Vaddr+p.Filesz+0xfff)&^0xfff, perm, p.Off-(p.Vaddr-start))
	}
	b.WriteString("7f0000000000-7f0000100000 rwxp 00000000 00:00 0 \n")
	if err := os.WriteFile(filepath.Join(pdir, "maps"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "root", "tmp", "perf-7.map"), []byte("7f0000001000 100 JS:~phoneHome /app/phone.js:15:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, "/exe"
}

func TestSymbolize(t *testing.T) {
	root, exe := fakeProc(t)
	s := NewAt(root)
	pc := uint64(knownFunction())
	// The last address is outside every mapping: garbage, the stack ends
	// before it.
	frames := s.Symbolize(7, []uint64{pc, 0x7f0000001010, 0x7f0000090000, 0x10, 0x7f0000001010}, 0)
	want := []event.Frame{
		{Function: "github.com/egress-dev/egress/symbolize.knownFunction", Module: exe, Offset: pc},
		{Function: "phoneHome", File: "/app/phone.js", Line: 15, Module: ModuleJIT, Offset: 0x7f000000100f},
		{Module: ModuleAnon, Offset: 0x7f000008ffff},
	}
	if len(frames) != len(want) {
		t.Fatalf("got %d frames, want %d: %+v", len(frames), len(want), frames)
	}
	if !strings.HasSuffix(frames[0].File, "symbolize_test.go") || frames[0].Line == 0 {
		t.Errorf("frame 0 at %s:%d, want this file", frames[0].File, frames[0].Line)
	}
	frames[0].File, frames[0].Line = "", 0
	if diff := cmp.Diff(want, frames); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}

	// The process exits: its mappings are still known.
	if err := os.Remove(filepath.Join(root, "7", "maps")); err != nil {
		t.Fatal(err)
	}
	again := s.Symbolize(7, []uint64{pc}, 0)
	if again[0].Function != want[0].Function {
		t.Errorf("after exit: %+v, want %s", again[0], want[0].Function)
	}
	if st := s.Stats(); st.Frames != 4 || st.Unnamed != 1 || st.Truncated != 1 {
		t.Errorf("stats %+v, want 4 frames, 1 unnamed, 1 truncated", st)
	}
	if f := s.Symbolize(7, []uint64{0x10}, 0); len(f) != 1 || f[0].Module != ModuleUnknown {
		t.Errorf("an innermost address outside every mapping: %+v, want one [unknown] frame", f)
	}
	// The same stack again comes from the cache, equal.
	if diff := cmp.Diff(again, s.Symbolize(7, []uint64{pc}, 0)); diff != "" || s.Stats().Cached != 1 {
		t.Errorf("cached stack differs (-first +cached), %d cached:\n%s", s.Stats().Cached, diff)
	}
}

func TestOpenObjectCorrupt(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 4, 64, 4096} {
		if _, err := OpenObject(strings.NewReader(string(b[:n]))); err == nil {
			t.Errorf("%d bytes of an ELF file: no error", n)
		}
	}
}
