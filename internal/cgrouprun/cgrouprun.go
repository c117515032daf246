//go:build linux

package cgrouprun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount returns where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func Mount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", errors.New("find cgroup v2: neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is a cgroup2 mount (egress run needs cgroup v2)")
}

// mountPrivate mounts the cgroup v2 hierarchy on a new temporary directory.
// It is the way in when /sys was remounted without it, as `ip netns exec`
// does: it mounts a fresh sysfs in a private mount namespace, so the mount
// is private too and goes away with that namespace.
func mountPrivate() (string, error) {
	dir, err := os.MkdirTemp("", "egress-cgroup2-")
	if err != nil {
		return "", fmt.Errorf("mount cgroup2: %w", err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount cgroup2 on %s (needs CAP_SYS_ADMIN): %w", dir, err)
	}
	return dir, nil
}

// Group is a cgroup v2 made for one command.
type Group struct {
	Path string // directory in the cgroup2 file system
	ID   uint64 // cgroup id (the directory's inode), as bpf_get_current_cgroup_id returns it
	dir  *os.File
	// mounted is the mount point New made, unmounted by Remove.
	mounted string
	removed bool
}

var seq atomic.Uint64

// New makes an empty cgroup under the cgroup v2 mount, named after prefix,
// the process id and a sequence number. Where no cgroup2 mount is visible
// it mounts one (see mountPrivate).
func New(prefix string) (*Group, error) {
	g := &Group{}
	mount, err := Mount()
	if err != nil {
		if mount, err = mountPrivate(); err != nil {
			return nil, err
		}
		g.mounted = mount
	}
	g.Path = filepath.Join(mount, fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1)))
	if err := os.Mkdir(g.Path, 0o755); err != nil {
		g.unmount()
		return nil, fmt.Errorf("make cgroup (needs root or a delegated cgroup): %w", err)
	}
	if g.dir, err = os.Open(g.Path); err != nil {
		os.Remove(g.Path)
		g.unmount()
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(g.dir.Fd()), &st); err != nil {
		g.dir.Close()
		os.Remove(g.Path)
		g.unmount()
		return nil, fmt.Errorf("stat cgroup: %w", err)
	}
	g.ID = st.Ino
	return g, nil
}

func (g *Group) unmount() {
	if g.mounted != "" {
		unix.Unmount(g.mounted, unix.MNT_DETACH)
		os.Remove(g.mounted)
	}
}

// Command returns a command that starts inside g (CLONE_INTO_CGROUP,
// Linux >= 5.7).
func (g *Group) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(g.dir.Fd())}
	return cmd
}

// Procs returns the process ids in g.
func (g *Group) Procs() ([]int, error) {
	data, err := os.ReadFile(filepath.Join(g.Path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Kill sends SIGKILL to every process in g and its descendants
// (cgroup.kill, Linux >= 5.14; else each process listed in g).
func (g *Group) Kill() error { return g.kill() }

func (g *Group) kill() error {
	if err := os.WriteFile(filepath.Join(g.Path, "cgroup.kill"), []byte("1"), 0); err == nil {
		return nil
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	for _, p := range pids {
		unix.Kill(p, unix.SIGKILL)
	}
	return nil
}

// Remove kills what is left in g and in the cgroups the command made under
// it (cgroup.kill takes the whole subtree), waits until the subtree is
// empty (up to 5 s) and removes it, children first.
func (g *Group) Remove() error {
	if g.removed {
		return nil
	}
	g.removed = true
	defer g.unmount()
	defer g.dir.Close()
	var err error
	for i := range 100 {
		var busy bool
		if busy, err = g.populated(); err == nil && !busy || errors.Is(err, os.ErrNotExist) {
			break // empty, or already removed (by the supervisor)
		}
		if i == 0 {
			g.Kill()
		}
		time.Sleep(50 * time.Millisecond)
	}
	// rmdir fails with EBUSY while the last processes are being reaped.
	for range 100 {
		if err = removeTree(g.Path); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", g.Path, err)
}

// populated reports whether any process is left in g or its descendants
// (cgroup.events); without that file, whether g's own cgroup.procs lists one.
func (g *Group) populated() (bool, error) {
	data, err := os.ReadFile(filepath.Join(g.Path, "cgroup.events"))
	if err != nil {
		pids, err := g.Procs()
		return len(pids) > 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "populated "); ok {
			return v != "0", nil
		}
	}
	return false, nil
}

// removeTree removes the cgroup dir and every cgroup under it, deepest
// first (a cgroup with children cannot be removed). A cgroup's directory
// holds only interface files besides its children, and rmdir is the way
// to remove it.
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return unix.Rmdir(dir)
}
