//go:build linux

package cgrouprun

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// TestPrivilegedRunsInGroup: the command is in the new cgroup from its
// first instruction (it reads its own /proc/self/cgroup), a child it leaves
// behind is killed (Remove waits until the cgroup is empty), and the cgroup is gone afterwards.
func TestPrivilegedRunsInGroup(t *testing.T) {
	testnet.RequirePrivileged(t, "sh", "sleep")
	g, err := New("egress-test")
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			g.Remove()
		}
	})
	mount, _ := Mount()
	cmd := g.Command(context.Background(), "sh", "-c", "cat /proc/self/cgroup; sleep 60 >/dev/null 2>&1 & echo started")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "0::" + strings.TrimPrefix(g.Path, mount) + "\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("the command's /proc/self/cgroup is\n%s\nwant a line %q", out, want)
	}
	pids, err := g.Procs()
	if err != nil || len(pids) != 1 {
		t.Fatalf("procs left in the cgroup: %v, %v; want the one sleep", pids, err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	removed = true
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still exists: %v", g.Path, err)
	}
}
