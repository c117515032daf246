package ebpf

import "github.com/egress-dev/egress/internal/procfs"

// descendants returns the pids of root's living descendants (not root).
func descendants(root int) ([]int, error) {
	tree, err := procfs.Tree("/proc", root)
	if err != nil {
		return nil, err
	}
	return tree[1:], nil
}
