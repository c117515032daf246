package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestParsePPID(t *testing.T) {
	tests := []struct {
		stat string
		want int
		ok   bool
	}{
		{"1234 (php-fpm) S 1 1234 1234 0 -1", 1, true},
		{"77 (a) b) (c) R 42 77 77", 42, true},
		{"77 (evil\n) S 9 1", 9, true},
		{"garbage", 0, false},
		{"5 (x) S", 0, false},
		{"5 (x) S -3 1", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParsePPID([]byte(tc.stat))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ParsePPID(%q) = %d, %v; want %d, %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
}

// TestTreeFindsChild: a child started by this test is in our tree.
func TestTreeFindsChild(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tree, err := Tree("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if tree[0] != os.Getpid() || !slices.Contains(tree, cmd.Process.Pid) {
		t.Errorf("Tree(self) = %v, want self first and child %d", tree, cmd.Process.Pid)
	}
}

func FuzzParsePPID(f *testing.F) {
	f.Add([]byte("1234 (php-fpm) S 1 1234 1234 0 -1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ppid, ok := ParsePPID(b); ok && ppid < 0 {
			t.Fatalf("negative ppid %d accepted", ppid)
		}
	})
}
