//go:build linux

package cgrouprun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// launchEnv carries the launcher's Confinement from egress to the copy of
// itself it starts in the cgroup; the launcher removes it before CMD runs.
const launchEnv = "EGRESS_INTERNAL_LAUNCH"

// Confinement is what the command runs under. The zero value confines the
// most: every capability in DefaultDrop dropped, no_new_privs, its own
// cgroup namespace (rooted at the run's cgroup) and pid namespace.
type Confinement struct {
	// Keep lists capabilities (as "NET_RAW" or "CAP_NET_RAW") the command
	// keeps although DefaultDrop lists them.
	Keep []string `json:"keep,omitempty"`
}

// DefaultDrop are the capabilities a CI command does not need, and that
// would let a root command leave egress's view: raw and packet sockets
// (NET_RAW), changing the network or detaching programs (NET_ADMIN, BPF,
// SYS_ADMIN, PERFMON), reading or writing other processes and the kernel
// (SYS_PTRACE, SYS_MODULE, SYS_RAWIO, DAC_READ_SEARCH, CHECKPOINT_RESTORE),
// and the machine's own state (SYS_BOOT, SYS_TIME, SYSLOG, MAC_*, AUDIT_CONTROL).
var DefaultDrop = []string{
	"NET_RAW", "NET_ADMIN", "SYS_ADMIN", "BPF", "PERFMON", "SYS_PTRACE", "SYS_MODULE",
	"SYS_RAWIO", "DAC_READ_SEARCH", "CHECKPOINT_RESTORE", "SYS_BOOT", "SYS_TIME",
	"SYSLOG", "MAC_ADMIN", "MAC_OVERRIDE", "AUDIT_CONTROL", "WAKE_ALARM", "BLOCK_SUSPEND",
}

var capNumbers = map[string]int{
	"NET_RAW": unix.CAP_NET_RAW, "NET_ADMIN": unix.CAP_NET_ADMIN, "SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"BPF": unix.CAP_BPF, "PERFMON": unix.CAP_PERFMON, "SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_MODULE": unix.CAP_SYS_MODULE, "SYS_RAWIO": unix.CAP_SYS_RAWIO, "DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE, "SYS_BOOT": unix.CAP_SYS_BOOT, "SYS_TIME": unix.CAP_SYS_TIME,
	"SYSLOG": unix.CAP_SYSLOG, "MAC_ADMIN": unix.CAP_MAC_ADMIN, "MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "WAKE_ALARM": unix.CAP_WAKE_ALARM, "BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND,
}

// ParseKeep checks a --keep-caps list: each name must be one of DefaultDrop
// (the others are never dropped).
func ParseKeep(list []string) ([]string, error) {
	var out []string
	for _, c := range list {
		n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
		if n == "" {
			continue
		}
		if _, ok := capNumbers[n]; !ok {
			return nil, fmt.Errorf("capability %q is not one egress run drops (%s)", c, strings.Join(DefaultDrop, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Dropped returns the capabilities c takes away, in DefaultDrop's order.
func (c Confinement) Dropped() []string {
	var out []string
	for _, n := range DefaultDrop {
		if !slices.Contains(c.Keep, n) {
			out = append(out, n)
		}
	}
	return out
}

// Launch returns a command that runs name inside g under c: egress's own
// executable starts in g (CLONE_INTO_CGROUP) in a new pid namespace, with
// SIGKILL as its parent-death signal, as a small init (MaybeLaunch) that
// enters a new cgroup namespace, drops the capabilities, sets no_new_privs,
// starts name, passes SIGTERM, SIGINT, SIGHUP and SIGQUIT on to it, reaps
// what is reparented to it and exits with name's status. When the launcher
// dies (egress was killed), the kernel kills every process of its pid
// namespace. The caller must keep the goroutine that starts the command on
// its thread until it is reaped (runtime.LockOSThread): the parent-death
// signal fires when the starting thread exits.
func (g *Group) Launch(ctx context.Context, c Confinement, name string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find egress's executable for the launcher: %w", err)
	}
	spec, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), launchEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		UseCgroupFD: true, CgroupFD: int(g.dir.Fd()),
		// A mount namespace of its own: the launcher remounts cgroup2 and
		// /proc in it (unshare(CLONE_NEWNS) is refused to a threaded Go
		// process, so it is made at clone time).
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd, nil
}

// MaybeLaunch is the launcher: when this process was started by Launch, it
// confines itself, runs the command and exits; otherwise it returns at once.
// main calls it first.
func MaybeLaunch() {
	if _, ok := os.LookupEnv(superviseEnv); ok {
		if len(os.Args) < 3 {
			launchFail("supervisor: no cgroup")
		}
		os.Exit(supervise(os.Args[1], os.Args[2]))
	}
	spec, ok := os.LookupEnv(launchEnv)
	if !ok {
		return
	}
	os.Unsetenv(launchEnv)
	var c Confinement
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		launchFail("read the confinement: %v", err)
	}
	if len(os.Args) < 2 {
		launchFail("no command")
	}
	os.Exit(launch(c, os.Args[1], os.Args[2:]))
}

func launchFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "egress: launcher: "+format+"\n", args...)
	os.Exit(126)
}

// launch confines the calling thread (namespaces, capabilities and
// no_new_privs are per thread in Linux; the command is cloned from this
// thread and inherits them), then starts and waits for the command.
func launch(c Confinement, name string, args []string) int {
	runtime.LockOSThread() // never unlocked: the thread dies with the launcher
	path, err := exec.LookPath(name)
	if err != nil {
		launchFail("%v", err)
	}
	// A cgroup namespace rooted at the run's cgroup: cgroup v2 refuses to
	// move a process out of its namespace's root, even for root.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		launchFail("new cgroup namespace: %v", err)
	}
	if err := remount(); err != nil {
		launchFail("%v", err)
	}
	if err := dropCaps(c.Dropped()); err != nil {
		launchFail("drop capabilities: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		launchFail("no_new_privs: %v", err)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)
	cmd := exec.Command(path, args...)
	cmd.Args[0] = name
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(os.Stderr, "egress: launcher: start %s: %v\n", name, err)
		return code
	}
	child := cmd.Process.Pid
	go func() {
		for s := range sigs {
			unix.Kill(child, s.(syscall.Signal))
		}
	}()
	// As pid 1 of the namespace, reap everything; the command's status is
	// the run's.
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 126
		}
		if pid != child {
			continue
		}
		// What the command left dies with the namespace when pid 1 exits;
		// give output a moment to drain first.
		time.Sleep(10 * time.Millisecond)
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
		return 126
	}
}

// remount makes the launcher's mount namespace show the command only its
// own part of the system: each cgroup2 mount is covered by one made in the
// new cgroup namespace (its root is the run's cgroup, as in a container),
// so no cgroup.procs outside the run's subtree is reachable; the cgroup2
// namespace alone does not forbid moving out unless the host mounted it
// with nsdelegate. /proc is remounted for the new pid namespace, so the
// command sees no other process. Mounts are made private first: nothing
// propagates back to the host.
func remount() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	points, err := cgroup2Mounts()
	if err != nil {
		return err
	}
	for _, mp := range points {
		// The same file system cannot be mounted on itself: take the
		// host's view away first (in this private namespace only).
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount the host's cgroup2 view %s: %w", mp, err)
		}
		if err := unix.Mount("cgroup2", mp, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("cover cgroup2 mount %s: %w", mp, err)
		}
	}
	// /proc only hides the host's processes (the pid namespace already
	// keeps the command from signalling them, and ptrace rules from their
	// /proc entries): where a container forbids the mount, say so and go on.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		fmt.Fprintf(os.Stderr, "egress: launcher: warning: /proc not remounted for the pid namespace (%v): the command sees the host's process list\n", err)
	}
	return nil
}

// cgroup2Mounts lists the mount points of cgroup2 file systems.
func cgroup2Mounts() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || g[0] != "cgroup2" {
			continue
		}
		mp := unescapeMount(f[4])
		if !slices.Contains(out, mp) {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dropCaps removes caps from the calling thread's bounding, inheritable,
// permitted, effective and ambient sets, so neither the command nor any
// program it executes (setuid or with file capabilities) has them.
func dropCaps(names []string) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, n := range names {
		c := capNumbers[n]
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop %s from the bounding set: %w", n, err)
		}
		unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_LOWER, uintptr(c), 0, 0)
		bit := uint32(1) << (c % 32)
		data[c/32].Effective &^= bit
		data[c/32].Permitted &^= bit
		data[c/32].Inheritable &^= bit
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// Run starts cmd and waits for it on one locked thread, so a parent-death
// signal set by Launch fires only when egress itself dies, not when the Go
// runtime retires the thread that started the command.
func Run(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- cmd.Run()
	}()
	return <-done
}
