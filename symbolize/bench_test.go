package symbolize

import (
	"os"
	"testing"
)

// BenchmarkOpenObject reads the symbol tables of a large binary, as the
// first stack of a process does: this test binary (Go) and, where it is
// installed, Debian's node (110,000 C++ function symbols).
func BenchmarkOpenObject(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{exe, "/usr/bin/node"} {
		b.Run(path, func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Skip(err)
			}
			defer f.Close()
			for b.Loop() {
				if _, err := OpenObject(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
