// Package procfs reads the process tree from /proc: who descends from whom.
// Both live capture backends need it (eBPF to seed the tracked pids, packet
// capture to find which process owns a DNS socket).
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// maxTree bounds the processes a tree walk returns.
const maxTree = 1 << 16

// Tree returns root followed by its living descendants (breadth first),
// read from the <proc>/<pid>/stat files under proc (normally "/proc").
// Processes that exit during the scan are skipped.
func Tree(proc string, root int) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", proc, err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue // gone already
		}
		if ppid, ok := ParsePPID(b); ok && ppid != pid {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(out) && len(out) < maxTree; i++ {
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// ParsePPID reads the 4th field of a /proc/<pid>/stat file. The command
// name (2nd field) may hold spaces and parentheses, so parsing starts after
// the last ')'.
func ParsePPID(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil && ppid >= 0
}
