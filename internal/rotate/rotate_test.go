package rotate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestNoLineLost writes lines from several goroutines across many
// rotations and reads every file back: each line is whole, none is missing
// or repeated, and no file is past the limit.
func TestNoLineLost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "calls.jsonl")
	const maxSize, keep, writers, each = 4096, 1000, 4, 500
	f, err := Open(path, maxSize, keep)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				b, _ := json.Marshal(map[string]any{"type": "connection", "writer": w, "seq": i, "pad": fmt.Sprintf("%*d", i%97, i)})
				if _, err := f.Write(append(b, '\n')); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Rotations() < 10 {
		t.Fatalf("%d rotations: the test should cross many", f.Rotations())
	}
	seen := map[[2]int]bool{}
	files := []string{path}
	for i := 1; i <= int(f.Rotations()); i++ {
		files = append(files, fmt.Sprintf("%s.%d", path, i))
	}
	for _, name := range files {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s: %d bytes, past the limit", name, st.Size())
		}
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var m struct{ Writer, Seq int }
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: a line does not parse (split?): %v: %q", name, err, sc.Text())
			}
			k := [2]int{m.Writer, m.Seq}
			if seen[k] {
				t.Errorf("line %v twice", k)
			}
			seen[k] = true
		}
		fh.Close()
	}
	if len(seen) != writers*each {
		t.Errorf("%d lines read back, wrote %d", len(seen), writers*each)
	}
}

func TestKeepBound(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Open(path, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := f.Write([]byte("0123456789\n")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 { // out, out.1, out.2
		t.Errorf("%d files, want 3 (the file and 2 kept)", len(ents))
	}
}
