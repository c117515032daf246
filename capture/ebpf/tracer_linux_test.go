//go:build linux

package ebpf

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
)

var update = flag.Bool("update", false, "rewrite testdata/records from the privileged tests")

// The test binary doubles as the processes under watch: with
// EGRESS_EBPF_HELPER set, TestMain runs a helper instead of the tests.
const helperEnv = "EGRESS_EBPF_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper modes:
//
//	connect ADDR TIMEOUT  print the pid, wait for a line on stdin, dial, close
//	listen ADDR           accept, read to EOF, close; prints "ready"
//	hold                  open a Tracer, print its program ids, sleep
func helper(mode string, args []string) int {
	switch mode {
	case "connect":
		fmt.Println(os.Getpid())
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		d, _ := time.ParseDuration(args[1])
		c, err := net.DialTimeout("tcp", args[0], d)
		if err != nil {
			fmt.Println("error", err)
			return 0
		}
		fmt.Println("connected")
		c.Close()
		return 0
	case "listen":
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("ready")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 2
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	case "hold":
		tr, err := Open(Options{PIDs: []int{os.Getpid()}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		for _, p := range []*ebpf.Program{tr.objs.OnSetState, tr.objs.OnFork, tr.objs.OnErrorReport} {
			info, err := p.Info()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			id, _ := info.ID()
			fmt.Println(id)
		}
		fmt.Println("attached")
		time.Sleep(time.Minute)
		return 0
	}
	return 2
}

func privileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("EGRESS_PRIVILEGED_TESTS") == "1" {
			t.Fatal("EGRESS_PRIVILEGED_TESTS=1 but not running as root")
		}
		t.Skip("needs root: loads eBPF programs and builds network namespaces")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testNet is a client and a server namespace joined by a veth pair:
// client 198.18.0.1 and 2001:db8::1, server 198.18.0.2 and 2001:db8::2.
type testNet struct{ client, server, dev string }

var nsSeq int

func newTestNet(t *testing.T) testNet {
	t.Helper()
	nsSeq++
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, nsSeq)
	n := testNet{client: "egc" + id, server: "egs" + id, dev: "vc" + id}
	for _, ns := range []string{n.client, n.server} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "link", "add", n.dev, "netns", n.client, "type", "veth", "peer", "name", "vs"+id, "netns", n.server)
	for _, c := range []struct{ ns, dev, v4, v6 string }{
		{n.client, n.dev, "198.18.0.1/24", "2001:db8::1/64"},
		{n.server, "vs" + id, "198.18.0.2/24", "2001:db8::2/64"},
	} {
		run(t, "ip", "-n", c.ns, "addr", "add", c.v4, "dev", c.dev)
		run(t, "ip", "-n", c.ns, "addr", "add", c.v6, "dev", c.dev, "nodad")
		run(t, "ip", "-n", c.ns, "link", "set", c.dev, "up")
		run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
	}
	// Wait until both ends report carrier, so no test SYN is lost to a link
	// still coming up (it would show as a retransmit).
	for _, c := range []struct{ ns, dev string }{{n.client, n.dev}, {n.server, "vs" + id}} {
		for i := 0; ; i++ {
			out, _ := exec.Command("ip", "-n", c.ns, "link", "show", "dev", c.dev).Output()
			if strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
				break
			}
			if i == 50 {
				t.Fatalf("%s in %s has no carrier: %s", c.dev, c.ns, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return n
}

func (n testNet) nft(t *testing.T, ns, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", ns, err, out)
	}
}

// listen starts a server helper in the server namespace.
func (n testNet) listen(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.server, os.Args[0], addr)
	cmd.Env = append(os.Environ(), helperEnv+"=listen")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("listener in %s: %q %v", n.server, line, err)
	}
}

// proc is a helper started in a namespace, waiting for its go signal.
type proc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	pid   int // the connecting process (the helper, not ip or sh)
	shell int // pid of the sh wrapper, when there is one
}

// start runs the connect helper in ns; through sh when viaShell, so the
// connecting process is a child of the process started.
func start(t *testing.T, ns, addr, timeout string, viaShell bool) *proc {
	t.Helper()
	args := []string{"netns", "exec", ns, os.Args[0], addr, timeout}
	if viaShell {
		// "; exit $?" keeps sh from exec'ing the helper in its place.
		args = []string{"netns", "exec", ns, "sh", "-c", fmt.Sprintf("%q %q %q; exit $?", os.Args[0], addr, timeout)}
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), helperEnv+"=connect")
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &proc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper in %s: %v", ns, err)
	}
	if p.pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("helper pid line %q: %v", line, err)
	}
	if viaShell {
		p.shell = cmd.Process.Pid // ip netns exec execs sh in place
	}
	return p
}

// dial lets the helper connect and returns what it printed.
func (p *proc) dial(t *testing.T) string {
	t.Helper()
	fmt.Fprintln(p.in, "go")
	line, _ := p.out.ReadString('\n')
	p.cmd.Wait()
	return strings.TrimSpace(line)
}

type collector struct {
	mu     sync.Mutex // guards the fields below
	events []*event.Sock
	raw    [][]byte
}

func (c *collector) Sock(s *event.Sock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, s)
}

// trace opens a tracer and runs it until the returned stop is called.
func trace(t *testing.T, opts Options) (*Tracer, *collector, func() []*event.Sock) {
	t.Helper()
	t0 := time.Now()
	tr, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Logf("Open (load + attach) took %v; %s", time.Since(t0), tr.Backend())
	t.Cleanup(func() { tr.Close() })
	c := &collector{}
	tr.onRecord = func(b []byte) {
		c.mu.Lock()
		c.raw = append(c.raw, append([]byte(nil), b...))
		c.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, c) }()
	return tr, c, func() []*event.Sock {
		time.Sleep(300 * time.Millisecond) // let the last records drain
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if n := tr.Lost(); n != 0 {
			t.Errorf("lost %d records", n)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if *update {
			saveSeeds(t, c.raw)
		}
		return c.events
	}
}

func saveSeeds(t *testing.T, raw [][]byte) {
	dir := filepath.Join("testdata", "records")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range raw {
		name := fmt.Sprintf("%s-%d.bin", strings.ReplaceAll(t.Name(), "/", "_"), i)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// step is what the tests compare: the facts of an event that do not vary
// between runs.
type step struct {
	Kind  event.SockKind
	Errno int
	Dst   netip.AddrPort
	PID   int
	Comm  string
}

func steps(t *testing.T, evs []*event.Sock, src netip.Addr) []step {
	t.Helper()
	var out []step
	for i, e := range evs {
		out = append(out, step{e.Kind, e.Errno, e.Dst, e.Proc.PID, e.Proc.Comm})
		// One socket throughout: same cookie and 4-tuple, a real source port.
		if e.Cookie != evs[0].Cookie || e.Src != evs[0].Src {
			t.Errorf("event %d: cookie %#x src %v, want %#x %v as the first", i, e.Cookie, e.Src, evs[0].Cookie, evs[0].Src)
		}
		if e.Src.Addr() != src || e.Src.Port() == 0 {
			t.Errorf("event %d: src %v, want %v with a bound port", i, e.Src, src)
		}
		if i > 0 && e.Time < evs[i-1].Time {
			t.Errorf("event %d: time goes back", i)
		}
	}
	if len(evs) > 0 {
		if d := time.Since(time.Unix(0, evs[0].Time)); d < 0 || d > time.Minute {
			t.Errorf("first event time %v is %v from now: clock conversion is off", time.Unix(0, evs[0].Time), d)
		}
	}
	return out
}

var testComm = func() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}()

func TestPrivilegedOutcomes(t *testing.T) {
	privileged(t)
	client := netip.MustParseAddr("198.18.0.1")
	server := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		name    string
		dst     netip.AddrPort
		nft     string // ruleset in the client namespace
		listen  bool
		timeout string
		want    func(pid int) []step
		printed string
	}{{
		name:    "established",
		dst:     netip.AddrPortFrom(server, 80),
		listen:  true,
		timeout: "3s",
		printed: "connected",
		want: func(pid int) []step {
			d := netip.AddrPortFrom(server, 80)
			return []step{{event.SockConnect, 0, d, pid, testComm}, {event.SockEstablished, 0, d, pid, testComm}, {event.SockClose, 0, d, pid, testComm}}
		},
	}, {
		name:    "refused by RST from a closed port",
		dst:     netip.AddrPortFrom(server, 82),
		timeout: "3s",
		printed: "error dial tcp 198.18.0.2:82: connect: connection refused",
		want: func(pid int) []step {
			d := netip.AddrPortFrom(server, 82)
			return []step{{event.SockConnect, 0, d, pid, testComm}, {event.SockReset, 0, d, pid, testComm},
				{event.SockError, int(syscall.ECONNREFUSED), d, pid, testComm}, {event.SockClose, 0, d, pid, testComm}}
		},
	}, {
		name:    "rejected with icmp admin-prohibited",
		dst:     netip.AddrPortFrom(server, 81),
		nft:     "table inet egtest {\n chain out {\n type filter hook output priority 0;\n ip daddr 198.18.0.2 tcp dport 81 reject with icmp type admin-prohibited\n }\n}",
		timeout: "3s",
		printed: "error dial tcp 198.18.0.2:81: connect: no route to host",
		want: func(pid int) []step {
			d := netip.AddrPortFrom(server, 81)
			// KNOWN GAP: the app gets EHOSTUNREACH (see printed), but the
			// ICMP from the local reject reaches the socket while connect()
			// holds it, becomes the soft error that SO_ERROR returns, and no
			// error event is seen yet. Today's sequence is asserted so a
			// change is noticed; the wanted one has a SockError(EHOSTUNREACH)
			// before the close.
			return []step{{event.SockConnect, 0, d, pid, testComm}, {event.SockClose, 0, d, pid, testComm}}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNet(t)
			if tt.nft != "" {
				n.nft(t, n.client, tt.nft)
			}
			if tt.listen {
				n.listen(t, tt.dst.String())
			}
			p := start(t, n.client, tt.dst.String(), tt.timeout, false)
			_, _, stop := trace(t, Options{PIDs: []int{p.pid}})
			if got := p.dial(t); got != tt.printed {
				t.Errorf("helper printed %q, want %q", got, tt.printed)
			}
			got := steps(t, stop(), client)
			if diff := cmp.Diff(tt.want(p.pid), got, addrPorts); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// A firewall in the client's own namespace drops the SYN: no device ever
// sees a packet, yet the kernel retransmits at 1 s until the app gives up.
func TestPrivilegedSilentDrop(t *testing.T) {
	privileged(t)
	n := newTestNet(t)
	n.nft(t, n.client, fmt.Sprintf(`
table inet egtest {
	chain out {
		type filter hook output priority 0;
		ip daddr 198.18.0.2 tcp dport 80 drop
	}
}
table netdev egcount {
	chain tx {
		type filter hook egress device %s priority 0;
		tcp dport 80 counter
	}
}`, n.dev))
	dst := netip.MustParseAddrPort("198.18.0.2:80")
	p := start(t, n.client, dst.String(), "3s", false)
	_, _, stop := trace(t, Options{PIDs: []int{p.pid}})
	if got := p.dial(t); !strings.Contains(got, "i/o timeout") {
		t.Errorf("helper printed %q, want an i/o timeout", got)
	}
	evs := stop()
	got := steps(t, evs, netip.MustParseAddr("198.18.0.1"))
	// 6.5+ retransmits the first SYNs at 1 s: at 1 s and 2 s, and maybe at
	// 3 s racing the app's own close.
	if len(got) < 4 || len(got) > 5 {
		t.Fatalf("got %d events, want connect, 2 or 3 retransmits, close: %+v", len(got), got)
	}
	want := []step{{event.SockConnect, 0, dst, p.pid, testComm}}
	for range len(got) - 2 {
		want = append(want, step{event.SockRetransmit, 0, dst, p.pid, testComm})
	}
	want = append(want, step{event.SockClose, 0, dst, p.pid, testComm})
	if diff := cmp.Diff(want, got, addrPorts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	t0 := evs[0].Time
	for i, e := range evs[1:] {
		at := time.Duration(e.Time - t0)
		wantAt := time.Duration(i+1) * time.Second
		if e.Kind == event.SockClose {
			wantAt = 3 * time.Second
		}
		if at < wantAt-200*time.Millisecond || at > wantAt+300*time.Millisecond {
			t.Errorf("event %d (%v) at %v, want about %v", i+1, e.Kind, at, wantAt)
		}
	}
	out, err := exec.Command("ip", "netns", "exec", n.client, "nft", "list", "chain", "netdev", "egcount", "tx").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "counter packets 0 bytes 0") {
		t.Errorf("a SYN reached %s although the firewall drops them:\n%s", n.dev, out)
	}
}

func TestPrivilegedIPv6(t *testing.T) {
	privileged(t)
	n := newTestNet(t)
	dst := netip.MustParseAddrPort("[2001:db8::2]:443")
	n.listen(t, dst.String())
	p := start(t, n.client, dst.String(), "3s", false)
	_, _, stop := trace(t, Options{PIDs: []int{p.pid}})
	if got := p.dial(t); got != "connected" {
		t.Errorf("helper printed %q, want connected", got)
	}
	got := steps(t, stop(), netip.MustParseAddr("2001:db8::1"))
	want := []step{{event.SockConnect, 0, dst, p.pid, testComm}, {event.SockEstablished, 0, dst, p.pid, testComm}, {event.SockClose, 0, dst, p.pid, testComm}}
	if diff := cmp.Diff(want, got, addrPorts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// The watched process is a shell; the connect comes from its child, forked
// after Open. An unrelated process connecting at the same time is not
// reported.
func TestPrivilegedFollowsChildren(t *testing.T) {
	privileged(t)
	n := newTestNet(t)
	dst := netip.MustParseAddrPort("198.18.0.2:80")
	n.listen(t, dst.String())
	// The shell waits on its child's stdin, so the child is forked before
	// Open: the /proc scan must find it. A second child is forked after.
	watched := start(t, n.client, dst.String(), "3s", true)
	other := start(t, n.client, dst.String(), "3s", false)
	_, _, stop := trace(t, Options{PIDs: []int{watched.shell}, FollowChildren: true})
	if watched.pid == watched.shell {
		t.Fatalf("sh exec'd the helper in place (pid %d): no child to follow", watched.pid)
	}
	if got := other.dial(t); got != "connected" {
		t.Errorf("unrelated helper printed %q", got)
	}
	if got := watched.dial(t); got != "connected" {
		t.Errorf("watched helper printed %q", got)
	}
	got := steps(t, stop(), netip.MustParseAddr("198.18.0.1"))
	want := []step{{event.SockConnect, 0, dst, watched.pid, testComm}, {event.SockEstablished, 0, dst, watched.pid, testComm}, {event.SockClose, 0, dst, watched.pid, testComm}}
	if diff := cmp.Diff(want, got, addrPorts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// Children forked after Open are added by the kernel at fork.
func TestPrivilegedFollowsForkAfterOpen(t *testing.T) {
	privileged(t)
	n := newTestNet(t)
	dst := netip.MustParseAddrPort("198.18.0.2:80")
	n.listen(t, dst.String())
	cmd := exec.Command("ip", "netns", "exec", n.client, "sh", "-c",
		fmt.Sprintf("read x; %q %q 3s; exit $?", os.Args[0], dst.String()))
	cmd.Env = append(os.Environ(), helperEnv+"=connect")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	_, _, stop := trace(t, Options{PIDs: []int{cmd.Process.Pid}, FollowChildren: true})
	fmt.Fprintln(in, "go") // sh reads this line, then forks the helper
	r := bufio.NewReader(out)
	line, _ := r.ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper pid line %q", line)
	}
	fmt.Fprintln(in, "go")
	if line, _ := r.ReadString('\n'); strings.TrimSpace(line) != "connected" {
		t.Errorf("helper printed %q", line)
	}
	cmd.Wait()
	got := steps(t, stop(), netip.MustParseAddr("198.18.0.1"))
	want := []step{{event.SockConnect, 0, dst, pid, testComm}, {event.SockEstablished, 0, dst, pid, testComm}, {event.SockClose, 0, dst, pid, testComm}}
	if diff := cmp.Diff(want, got, addrPorts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// bpf_links die with their process: SIGKILL the holder, no link of its
// programs stays attached.
func TestPrivilegedDetachOnKill(t *testing.T) {
	privileged(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=hold")
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	progs := map[ebpf.ProgramID]bool{}
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("holder: %v", err)
		}
		line = strings.TrimSpace(line)
		if line == "attached" {
			break
		}
		id, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("holder printed %q", line)
		}
		progs[ebpf.ProgramID(id)] = true
	}
	if n := linksOf(t, progs); n != len(progs) {
		t.Fatalf("%d links of the holder's %d programs while it runs, want %d", n, len(progs), len(progs))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// Link release follows the last fd's close at exit, and the kernel
	// frees links from a workqueue: under a loaded CI machine (every
	// package's tests at once on two cores) that took over 3 s.
	deadline := time.Now().Add(15 * time.Second)
	for linksOf(t, progs) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d links still attached 15 s after SIGKILL", linksOf(t, progs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func linksOf(t *testing.T, progs map[ebpf.ProgramID]bool) int {
	t.Helper()
	it := new(link.Iterator)
	defer it.Close()
	n := 0
	for it.Next() {
		// Take opens an fd on the link, which keeps it alive: close it.
		l := it.Take()
		info, err := l.Info()
		l.Close()
		if err != nil {
			continue
		}
		if progs[info.Program] {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate links: %v", err)
	}
	return n
}

var addrPorts = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
