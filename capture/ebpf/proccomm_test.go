//go:build linux

package ebpf

import (
	"os"
	"path/filepath"
	"testing"
)

// noLeaderCache reads no /proc: the records' own comm is kept.
func noLeaderCache() *procCache {
	c := newProcCache()
	c.proc = ""
	return c
}

func comm16(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

// TestProcCacheLeaderComm: an event from a thread other than the leader
// (Node's libuv worker doing a lookup) carries the leader's comm, read
// once; the leader's own events and vanished processes keep theirs.
func TestProcCacheLeaderComm(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "100"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "100", "comm"), []byte("next-build (v16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newProcCache()
	c.proc = dir
	if p := c.get(100, 101, comm16("libuv-worker")); p.Comm != "next-build (v16" || p.PID != 100 {
		t.Errorf("worker thread: %+v, want the leader's comm", p)
	}
	if p := c.get(100, 100, comm16("node")); p.Comm != "node" {
		t.Errorf("leader: %+v, want its own comm", p)
	}
	if p := c.get(200, 201, comm16("gone")); p.Comm != "gone" {
		t.Errorf("vanished process: %+v, want the thread's comm", p)
	}
	os.WriteFile(filepath.Join(dir, "100", "comm"), []byte("renamed\n"), 0o644)
	if p := c.get(100, 102, comm16("libuv-worker")); p.Comm != "next-build (v16" {
		t.Errorf("cached: %+v", p)
	}
}
