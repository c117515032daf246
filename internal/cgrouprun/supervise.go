//go:build linux

package cgrouprun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// superviseEnv marks the copy of egress that outlives it (Supervise).
const superviseEnv = "EGRESS_INTERNAL_SUPERVISE"

// Supervisor is a copy of egress outside the run's cgroup, in a session of
// its own (a terminal's or CI runner's signal to egress's process group
// does not reach it), that holds duplicates of the blocking programs'
// links. When egress goes away without saying Done (SIGKILL, a crash, a
// SIGPIPE), the links stay attached, so nothing left in the cgroup can call
// out unblocked, while the supervisor kills the cgroup's whole tree,
// removes it and only then exits, releasing the links.
type Supervisor struct {
	cmd *exec.Cmd
	w   *os.File
}

// Supervise starts the supervisor of g, holding links (file descriptors of
// bpf links; they stay egress's too).
func (g *Group) Supervise(links []int) (*Supervisor, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find egress's executable for the supervisor: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervisor pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(self, g.Path, g.mounted)
	cmd.Env = append(os.Environ(), superviseEnv+"=1")
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	// Duplicates: the supervisor's copies are its own references to the
	// links; egress's stay with their owner.
	for _, fd := range links {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			w.Close()
			closeFiles(cmd.ExtraFiles)
			return nil, fmt.Errorf("duplicate link: %w", err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(dup), "bpf-link"))
	}
	defer closeFiles(cmd.ExtraFiles)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the supervisor: %w", err)
	}
	return &Supervisor{cmd: cmd, w: w}, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// Done tells the supervisor that egress cleaned up itself, and waits for it.
func (s *Supervisor) Done() error {
	if s == nil || s.w == nil {
		return nil
	}
	defer func() { s.w = nil }()
	_, err := s.w.Write([]byte("done\n"))
	s.w.Close()
	if werr := s.cmd.Wait(); err == nil {
		err = werr
	}
	return err
}

// supervise is the supervisor's body: wait for egress to say done or go
// away, and clean up after it in the latter case.
func supervise(path, mounted string) int {
	data, _ := io.ReadAll(os.Stdin)
	if strings.HasPrefix(string(data), "done") {
		return 0
	}
	g := &Group{Path: path, mounted: mounted}
	if err := g.kill(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "egress: supervisor: %v\n", err)
	}
	for range 100 {
		if busy, err := g.populated(); err != nil || !busy {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var err error
	for range 100 {
		if err = removeTree(path); err == nil || errors.Is(err, os.ErrNotExist) {
			err = nil
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.unmount()
	if err != nil {
		fmt.Fprintf(os.Stderr, "egress: supervisor: egress went away; removing its cgroup %s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "egress: supervisor: egress went away; killed and removed its cgroup %s\n", filepath.Base(path))
	return 0
}
