//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// hostileNet is the test network of the hostile app: the app namespace
// (198.18.0.2) and a peer (198.18.0.1) that runs the resolver and counts,
// in an nftables ingress chain on its side of the link, every frame of each
// way out that reaches it, whatever the app's side believed.
type hostileNet struct {
	app, peer *testnet.Namespace
	bin       string // egress, dnsd
	hostile   string // the hostile program, where uid 65534 can run it
	nothing   string // the allow-nothing policy
}

const (
	peerIP   = "198.18.0.1"
	peerTCP  = "198.18.0.1:7777"
	peerUDP  = "198.18.0.1:9999"
	peerIP6  = "2001:db8:9::1"
	peerUDP6 = "[2001:db8:9::1]:9999"
	exfilDNS = "secret-data.exfil.example"
)

func newHostileNet(t *testing.T) *hostileNet {
	t.Helper()
	n := testnet.NewForTest(t, "nft", "nsenter")
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress",
		"github.com/egress-dev/egress/internal/testkit/testnet/dnsd", "github.com/egress-dev/egress/internal/testkit/testnet/vendord",
		"github.com/egress-dev/egress/internal/testkit/testnet/hostile")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pfx := netip.MustParsePrefix
	app, peer, err := n.Pair(ctx, "app", pfx("198.18.0.2/24"), "peer", pfx(peerIP+"/24"))
	must(err)
	must(app.Addr(ctx, "eth0", pfx("2001:db8:9::2/64")))
	must(peer.Addr(ctx, "eth0", pfx(peerIP6+"/64")))
	// Unprivileged ping sockets, as systemd-based distributions allow.
	must(app.Sysctl(ctx, "net.ipv4.ping_group_range", "0 2147483647"))
	must(peer.Nft(ctx, `
table netdev hostile_peer {
	counter c_icmp {}
	counter c_raw {}
	counter c_frame {}
	counter c_udp {}
	counter c_tcp {}
	counter c_dns {}
	counter c_icmp6 {}
	counter c_udp6 {}
	chain in {
		type filter hook ingress device "eth0" priority 0; policy accept;
		ether type 0x88b5 counter name "c_frame"
		ip protocol icmp icmp type echo-request counter name "c_icmp"
		ip protocol 253 counter name "c_raw"
		udp dport 9999 counter name "c_udp"
		tcp dport 7777 tcp flags & (syn|ack) == syn counter name "c_tcp"
		udp dport 53 counter name "c_dns"
		ip6 nexthdr ipv6-icmp icmpv6 type echo-request counter name "c_icmp6"
		ip6 nexthdr udp udp dport 9999 counter name "c_udp6"
	}
}`))
	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("peer logs:\n%s", logs.String())
		}
	})
	_, err = peer.StartListening(ctx, "udp", 53, filepath.Join(bin, "dnsd"), &logs, "-listen", peerIP+":53", "-rr", exfilDNS+" A "+peerIP)
	must(err)
	_, err = peer.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs, "-http", ":80", "-https", "")
	must(err)
	for i := 0; ; i++ { // the servers start asynchronously
		if out, _ := app.Run(ctx, filepath.Join(bin, "hostile"), "tcp", peerIP+":80"); string(out) == "tcp: ok\n" {
			break
		} else if i == 50 {
			t.Fatal("the peer's HTTP server does not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// uid 65534 cannot enter t.TempDir(): give the program a world-readable home.
	dir, err := os.MkdirTemp("", "egress-hostile-")
	must(err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(os.Chmod(dir, 0o755))
	hostile := filepath.Join(dir, "hostile")
	data, err := os.ReadFile(filepath.Join(bin, "hostile"))
	must(err)
	must(os.WriteFile(hostile, data, 0o755))
	return &hostileNet{app: app, peer: peer, bin: bin, hostile: hostile, nothing: filepath.Join(rulesDir, "allow-nothing.yaml")}
}

// counters returns what reached the peer so far, by way out.
func (h *hostileNet) counters(t *testing.T) map[string]int {
	t.Helper()
	out, err := h.peer.Run(t.Context(), "nft", "list", "counters", "table", "netdev", "hostile_peer")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range regexp.MustCompile(`counter c_(\w+) \{\s*packets (\d+)`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	return got
}

// zero resets the peer's counters.
func (h *hostileNet) zero(t *testing.T) {
	t.Helper()
	if _, err := h.peer.Run(t.Context(), "nft", "reset", "counters", "table", "netdev", "hostile_peer"); err != nil {
		t.Fatal(err)
	}
}

type hostileRun struct {
	code           int
	stdout, stderr string
	report         report.Report
}

// egress runs egress run --format json FLAGS -- hostile ARGS in the app
// namespace. nsenter joins only its network namespace, so the host's
// cgroup2 mount stays visible, as on a CI runner (ip netns exec remounts
// /sys). The resolver is the peer's, given explicitly.
func (h *hostileNet) egress(t *testing.T, flags []string, args ...string) hostileRun {
	t.Helper()
	h.zero(t)
	cmd := h.command(t.Context(), flags, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := hostileRun{stdout: out.String(), stderr: errb.String()}
	// nsenter without --fork execs egress in place: its pid names the cgroup.
	if cmd.Process != nil {
		leftCgroups(t, cmd.Process.Pid)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("egress run: %v", err)
	}
	if err := json.Unmarshal(out.Bytes(), &res.report); err != nil {
		t.Fatalf("the report does not parse (exit %d): %v\n%s\nstderr:\n%s", res.code, err, res.stdout, res.stderr)
	}
	return res
}

// leftCgroups fails t when egress run PID left a cgroup behind.
func leftCgroups(t *testing.T, pid int) {
	t.Helper()
	for _, mount := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if left, _ := filepath.Glob(filepath.Join(mount, fmt.Sprintf("egress-run-%d-*", pid))); len(left) > 0 {
			t.Errorf("egress run %d left its cgroup behind: %q", pid, left)
		}
	}
}

func (h *hostileNet) command(ctx context.Context, flags []string, args ...string) *exec.Cmd {
	argv := []string{"--net=/run/netns/" + h.app.Name, "--", filepath.Join(h.bin, "egress"), "run",
		"--format", "json", "--resolver", peerIP}
	argv = append(argv, flags...)
	argv = append(argv, "--", h.hostile)
	return exec.CommandContext(ctx, "nsenter", append(argv, args...)...)
}

// line returns the hostile program's result for mode ("" when absent).
func (r hostileRun) line(mode string) string {
	for _, l := range strings.Split(r.stderr, "\n") {
		if v, ok := strings.CutPrefix(l, mode+": "); ok {
			return v
		}
	}
	return ""
}

// calls returns the report's connections to dst ("" any) of proto.
func (r hostileRun) calls(proto, dstIP string) []report.Connection {
	var out []report.Connection
	for _, c := range r.report.Connections {
		if c.Proto == proto && (dstIP == "" || c.DstIP.String() == dstIP) {
			out = append(out, c)
		}
	}
	return out
}

func unexpected(cs []report.Connection) bool {
	for _, c := range cs {
		if c.Verdict.Unexpected() {
			return true
		}
	}
	return false
}

func (r hostileRun) String() string {
	return fmt.Sprintf("exit %d\nstderr:\n%s\nreport:\n%s", r.code, r.stderr, r.stdout)
}

// TestPrivilegedRunHostile tries each way out of issue 9 as a hostile app
// would, with allow: [], as uid 65534 and as root. Under --block the peer
// must see nothing of it; without --block the call must be reported, judged
// unexpected and fail the run (exit 3) in enforce mode.
func TestPrivilegedRunHostile(t *testing.T) {
	h := newHostileNet(t)
	block := []string{"--rules", h.nothing, "--block"}
	audit := []string{"--rules", h.nothing}
	nobody := []string{"-uid", "65534"}

	t.Run("ping socket", func(t *testing.T) {
		for _, as := range [][]string{nobody, nil} {
			res := h.egress(t, block, append(as, "ping", peerIP)...)
			if got := h.counters(t)["icmp"]; got != 0 || res.code != ExitUnexpected || !unexpected(res.calls("icmp", peerIP)) {
				t.Errorf("as %v under --block: %d echo requests reached the peer (%q); want none, exit 3 and the call reported\n%v", as, got, res.line("ping"), res)
			}
			res = h.egress(t, audit, append(as, "ping", peerIP)...)
			if cs := res.calls("icmp", peerIP); res.code != ExitUnexpected || !unexpected(cs) || cs[0].Outcome != report.Sent {
				t.Errorf("as %v without --block: want exit 3 and the echo reported as sent\n%v", as, res)
			}
			// The peer's counter works: the reported echo did arrive.
			if got := h.counters(t)["icmp"]; got != 1 || res.line("ping") != "reply" {
				t.Errorf("as %v without --block: the peer counted %d echo requests (%q), want 1 and a reply", as, got, res.line("ping"))
			}
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		res := h.egress(t, block, append(nobody, "ping6", peerIP6, ",", "udp", peerUDP6)...)
		c := h.counters(t)
		if c["icmp6"] != 0 || c["udp6"] != 0 || res.code != ExitUnexpected || !unexpected(res.calls("icmpv6", peerIP6)) || !unexpected(res.calls("udp", peerIP6)) {
			t.Errorf("under --block: %d echo requests and %d datagrams reached the peer (%q, %q); want none, exit 3, both reported\n%v",
				c["icmp6"], c["udp6"], res.line("ping6"), res.line("udp"), res)
		}
		res = h.egress(t, audit, append(nobody, "ping6", peerIP6, ",", "udp", peerUDP6)...)
		c = h.counters(t)
		if c["icmp6"] != 1 || c["udp6"] != 1 || res.code != ExitUnexpected || !unexpected(res.calls("icmpv6", peerIP6)) || !unexpected(res.calls("udp", peerIP6)) {
			t.Errorf("without --block: the peer counted %d echo requests and %d datagrams (%q); want 1 each, exit 3, both reported\n%v",
				c["icmp6"], c["udp6"], res.line("ping6"), res)
		}
	})

	t.Run("raw socket as root", func(t *testing.T) {
		// By default the command has no NET_RAW: no raw socket at all.
		res := h.egress(t, block, "raw", peerIP)
		if got := h.counters(t)["raw"]; got != 0 || res.line("raw") != "socket: operation not permitted" {
			t.Errorf("default: %d raw packets reached the peer (%q); want no socket\n%v", got, res.line("raw"), res)
		}
		// Kept on request, the catch-all drops and reports the packet.
		keep := []string{"--keep-caps", "NET_RAW"}
		res = h.egress(t, append(block, keep...), "raw", peerIP)
		if got := h.counters(t)["raw"]; got != 0 || res.code != ExitUnexpected || !unexpected(res.calls("ip-proto-253", peerIP)) {
			t.Errorf("--keep-caps NET_RAW under --block: %d raw packets reached the peer (%q), exit %d; want none and exit 3\n%v", got, res.line("raw"), res.code, res)
		}
		res = h.egress(t, append(audit, keep...), "raw", peerIP)
		if cs := res.calls("ip-proto-253", peerIP); res.code != ExitUnexpected || !unexpected(cs) {
			t.Errorf("--keep-caps NET_RAW without --block: want exit 3 and the raw packet reported\n%v", res)
		}
		if got := h.counters(t)["raw"]; got != 1 {
			t.Errorf("without --block the peer counted %d raw packets, want 1", got)
		}
	})

	t.Run("udp without --block", func(t *testing.T) {
		for _, mode := range []string{"udp", "udpconn", "uring"} {
			res := h.egress(t, audit, append(nobody, mode, peerUDP)...)
			cs := res.calls("udp", peerIP)
			if res.code != ExitUnexpected || !unexpected(cs) || cs[0].DstPort != 9999 {
				t.Errorf("%s: want exit 3 and the call reported unexpected\n%v", mode, res)
			}
			if got := h.counters(t)["udp"]; got != 1 {
				t.Errorf("%s without --block: the peer counted %d datagrams, want 1", mode, got)
			}
			res = h.egress(t, block, append(nobody, mode, peerUDP)...)
			if got := h.counters(t)["udp"]; got != 0 || res.code != ExitUnexpected {
				t.Errorf("%s under --block: %d datagrams reached the peer; want none and exit 3\n%v", mode, got, res)
			}
		}
		// Audit mode reports without failing.
		res := h.egress(t, append(audit, "--mode", "audit"), "udp", peerUDP, "50")
		if cs := res.calls("udp", peerIP); res.code != ExitOK || len(cs) != 1 || cs[0].Count != 50 {
			t.Errorf("--mode audit: want exit 0 and one record counting 50 datagrams\n%v", res)
		}
	})

	t.Run("more than 10,000 refused calls", func(t *testing.T) {
		const n = 12000
		res := h.egress(t, block, append(nobody, "refuse", peerIP, strconv.Itoa(n))...)
		total := 0
		for _, c := range res.report.Connections {
			if c.Proto == "udp" {
				total += c.Count
			}
		}
		if res.line("refuse") != fmt.Sprintf("%d of %d refused", n, n) || total != n || res.report.Stats.RecordsDropped != n-10000 {
			t.Errorf("%q: the report counts %d refused sends (%d past the record limit); want all %d, %d past it",
				res.line("refuse"), total, res.report.Stats.RecordsDropped, n, n-10000)
		}
	})

	t.Run("AF_PACKET frame as root", func(t *testing.T) {
		for _, flags := range [][]string{block, audit} {
			res := h.egress(t, flags, "packet", "eth0")
			if got := h.counters(t)["frame"]; got != 0 || res.line("packet") != "socket: operation not permitted" {
				t.Errorf("%v: %d frames reached the peer (%q); want none: NET_RAW is dropped\n%v", flags, got, res.line("packet"), res)
			}
		}
		// What remains possible, plainly: a command that keeps NET_RAW can
		// send frames below IP, and the report says it kept it.
		res := h.egress(t, append(audit, "--keep-caps", "NET_RAW"), "packet", "eth0")
		if got := h.counters(t)["frame"]; got != 1 || !hinted(res, "confinement", "kept on request (--keep-caps): NET_RAW") {
			t.Errorf("--keep-caps NET_RAW: %d frames (%q), want 1 and a hint naming the kept capability\n%v", got, res.line("packet"), res)
		}
	})

	t.Run("capabilities and no_new_privs", func(t *testing.T) {
		for _, as := range [][]string{nobody, nil} {
			res := h.egress(t, audit, append(as, "caps")...)
			line := res.line("caps")
			m := regexp.MustCompile(`CapBnd: ([0-9a-f]+)`).FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "NoNewPrivs: 1") {
				t.Fatalf("as %v: %q, want the capability sets and NoNewPrivs: 1", as, line)
			}
			bnd, _ := strconv.ParseUint(m[1], 16, 64)
			for _, c := range []uint{13, 12, 21, 39, 19} { // NET_RAW NET_ADMIN SYS_ADMIN BPF SYS_PTRACE
				if bnd&(1<<c) != 0 {
					t.Errorf("as %v: capability %d is in the bounding set %s", as, c, m[1])
				}
			}
		}
	})

	t.Run("writing the root cgroup.procs", func(t *testing.T) {
		res := h.egress(t, block, "escape-root", ",", "tcp", peerTCP)
		if got := h.counters(t)["tcp"]; got != 0 || res.code != ExitUnexpected || !strings.HasSuffix(res.line("escape-root"), "now in /") {
			t.Errorf("under --block: %d SYNs reached the peer, escape %q; want none, exit 3, still in the run's cgroup (its namespace root /)\n%v",
				got, res.line("escape-root"), res)
		}
		res = h.egress(t, audit, "escape-root", ",", "tcp", peerTCP)
		if cs := res.calls("tcp", peerIP); res.code != ExitUnexpected || !unexpected(cs) {
			t.Errorf("without --block: want exit 3 and the connect reported\n%v", res)
		}
	})

	t.Run("killing egress from inside", func(t *testing.T) {
		// The launcher is pid 1 of the command's namespace: SIGKILL from
		// inside does not reach it, egress is not visible at all.
		res := h.egress(t, block, "kill-egress", ",", "tcp", peerTCP)
		if got := h.counters(t)["tcp"]; got != 0 || res.code != ExitUnexpected || res.line("tcp") != "operation not permitted" {
			t.Errorf("%d SYNs reached the peer after %q; want none, the connect refused and egress's report (exit 3)\n%v", got, res.line("kill-egress"), res)
		}
		t.Logf("kill-egress: %s", res.line("kill-egress"))
		for _, c := range res.calls("tcp", peerIP) {
			// The report was read back from JSON: "invalid IP" would not
			// even decode; the wire text of a missing source is "".
			if b, _ := c.SrcIP.MarshalText(); string(b) == "invalid IP" {
				t.Errorf("a refused connect has src_ip %q", b)
			}
		}
	})

	t.Run("a child cgroup", func(t *testing.T) {
		// Its TCP connections are followed by the sockops program: one to
		// the peer's HTTP server, one to a closed port.
		res := h.egress(t, audit, "child-cgroup", ",", "tcp", peerIP+":80", ",", "tcp", peerTCP)
		if cs := res.calls("tcp", peerIP); res.line("child-cgroup") != "moved" || res.code != ExitUnexpected || !unexpected(cs) {
			t.Errorf("without --block: %q; want the move to work, exit 3 and the child's connects reported\n%v", res.line("child-cgroup"), res)
		}
		outcomes := map[uint16]report.Outcome{}
		for _, c := range res.calls("tcp", peerIP) {
			if c.EndBasis == enforce.BasisChild {
				outcomes[c.DstPort] = c.Outcome
			}
		}
		if outcomes[80] != report.Established || outcomes[7777] != report.Refused {
			t.Errorf("the child's connections ended %v, want 80 established and 7777 refused\n%v", outcomes, res)
		}
		// A socket made before the move is judged by where it connects from.
		res = h.egress(t, audit, "late-child", peerIP+":80")
		if cs := res.calls("tcp", peerIP); res.line("late-child") != "ok" || res.code != ExitUnexpected || len(cs) != 1 ||
			cs[0].Outcome != report.Established || cs[0].EndBasis != enforce.BasisChild {
			t.Errorf("a socket connected after the move (%q): want exit 3 and one established child-cgroup connection\n%v", res.line("late-child"), res)
		}
		res = h.egress(t, block, "child-cgroup", ",", "tcp", peerTCP)
		if got := h.counters(t)["tcp"]; got != 0 || res.code != ExitUnexpected || res.line("tcp") != "operation not permitted" {
			t.Errorf("under --block: %d SYNs reached the peer (%q); want none and exit 3\n%v", got, res.line("tcp"), res)
		}
	})
}

// TestPrivilegedRunFailsClosed: egress killed with SIGKILL takes the
// command and what it left with it, nothing gets out meanwhile, and no
// cgroup is left; SIGTERM is passed on and reported as egress stopping the
// command; a closed stdout (SIGPIPE) leaves no cgroup either.
func TestPrivilegedRunFailsClosed(t *testing.T) {
	h := newHostileNet(t)
	block := []string{"--rules", h.nothing, "--block"}
	audit := []string{"--rules", h.nothing}
	// A detached daemon and the command itself each connect every 50 ms.
	loop := []string{"daemon", "tcploop", peerTCP, "200", "50ms", ",", "tcploop", peerTCP, "200", "50ms"}

	start := func(t *testing.T, flags []string) (*exec.Cmd, *bytes.Buffer) {
		t.Helper()
		h.zero(t)
		cmd := h.command(t.Context(), flags, loop...)
		var out bytes.Buffer
		cmd.Stdout = &out
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		// Wait for the loop's third connect, then let the caller strike.
		seen := make(chan struct{})
		go func() {
			defer pr.Close()
			buf := make([]byte, 4096)
			var acc []byte
			signalled := false
			for {
				n, err := pr.Read(buf)
				acc = append(acc, buf[:n]...)
				if !signalled && bytes.Contains(acc, []byte("tcploop 2: ")) {
					close(seen)
					signalled = true
				}
				if err != nil {
					if !signalled {
						close(seen)
					}
					return
				}
			}
		}()
		select {
		case <-seen:
		case <-time.After(20 * time.Second):
			t.Fatal("the command did not start its loop")
		}
		return cmd, &out
	}
	gone := func(t *testing.T, pid int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := false
			for _, mount := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				if l, _ := filepath.Glob(filepath.Join(mount, fmt.Sprintf("egress-run-%d-*", pid))); len(l) > 0 {
					left = true
				}
			}
			if !left {
				return
			}
			if time.Now().After(deadline) {
				leftCgroups(t, pid)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("SIGKILL", func(t *testing.T) {
		for _, flags := range [][]string{block, audit} {
			cmd, _ := start(t, flags)
			cmd.Process.Kill()
			cmd.Wait()
			atKill := h.counters(t)["tcp"]
			time.Sleep(1500 * time.Millisecond) // 30 more rounds of the loops, were they alive
			after := h.counters(t)["tcp"]
			if flags[len(flags)-1] == "--block" && after != 0 {
				t.Errorf("under --block: %d SYNs reached the peer, want none, before or after egress died", after)
			}
			if after-atKill > 2 {
				t.Errorf("%v: %d SYNs reached the peer in the 1.5 s after egress was killed (%d until then); want none but those in flight", flags, after-atKill, atKill)
			}
			gone(t, cmd.Process.Pid)
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		cmd, out := start(t, block)
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		var r report.Report
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			t.Fatalf("no report after SIGTERM (exit %d): %v\n%s", code, jerr, out)
		}
		if code != ExitStopped || !hinted(hostileRun{report: r}, "stopped", "egress stopped the command") {
			t.Errorf("exit %d, want %d and a hint that egress stopped the command\n%s", code, ExitStopped, out)
		}
		if got := h.counters(t)["tcp"]; got != 0 {
			t.Errorf("%d SYNs reached the peer under --block", got)
		}
		gone(t, cmd.Process.Pid)
	})

	t.Run("SIGPIPE", func(t *testing.T) {
		// As "egress run ... | head -1" when head is gone before the
		// report: egress's write to stdout gets SIGPIPE.
		for range 3 {
			h.zero(t)
			cmd := h.command(t.Context(), block, "udp", peerUDP)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			pr.Close()
			err = cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGPIPE {
				t.Logf("egress ended with %v (not SIGPIPE)", err)
			}
			gone(t, cmd.Process.Pid)
			if got := h.counters(t)["udp"]; got != 0 {
				t.Errorf("%d datagrams reached the peer under --block", got)
			}
		}
	})
}

// TestPrivilegedRunDNSExfiltration: a name no host entry allows is a call:
// unexpected (exit 3) without --block, refused before it leaves under
// --block, even when a cidr entry allows the address it would resolve to.
func TestPrivilegedRunDNSExfiltration(t *testing.T) {
	h := newHostileNet(t)
	policy := filepath.Join(t.TempDir(), "cidr-only.yaml")
	if err := os.WriteFile(policy, []byte("allow:\n  - cidr: 198.18.0.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, block := range []bool{true, false} {
		flags := []string{"--rules", policy}
		if block {
			flags = append(flags, "--block")
		}
		res := h.egress(t, flags, "-uid", "65534", "dns", peerIP+":53", exfilDNS)
		var l *report.Lookup
		for i := range res.report.Lookups {
			if strings.TrimSuffix(res.report.Lookups[i].Name, ".") == exfilDNS {
				l = &res.report.Lookups[i]
			}
		}
		if res.code != ExitUnexpected || l == nil || !l.Verdict.Unexpected() {
			t.Errorf("--block=%v: want exit 3 and the lookup of %s judged unexpected\n%v", block, exfilDNS, res)
		}
		got := h.counters(t)["dns"]
		switch {
		case block && (got != 0 || res.line("dns") == peerIP):
			t.Errorf("under --block %d queries reached the resolver and the app got %q; want none, refused", got, res.line("dns"))
		case !block && (got == 0 || res.line("dns") != peerIP):
			t.Errorf("without --block the resolver saw %d queries and the app got %q; want the name forwarded and answered", got, res.line("dns"))
		}
	}
}

// TestPrivilegedRunDNSOverTCP: a lookup over TCP is steered to the proxy,
// and its connection is reported to the server the app asked for, not to
// the proxy's loopback address.
func TestPrivilegedRunDNSOverTCP(t *testing.T) {
	h := newHostileNet(t)
	res := h.egress(t, []string{"--rules", h.nothing, "--mode", "audit"}, "-uid", "65534", "dnstcp", peerIP+":53", exfilDNS)
	if res.line("dnstcp") != peerIP {
		t.Fatalf("the lookup over TCP: %q, want %s\n%v", res.line("dnstcp"), peerIP, res)
	}
	server := 0
	for _, c := range res.report.Connections {
		switch {
		case c.Proto == "tcp" && c.DstIP.String() == peerIP && c.DstPort == 53 && !c.Loopback:
			server++
		case c.Proto == "tcp" && c.Loopback:
			t.Errorf("a connection to the proxy's address is reported: %s:%d", c.DstIP, c.DstPort)
		}
	}
	if server == 0 {
		t.Errorf("no TCP connection to %s:53 reported\n%v", peerIP, res)
	}
}

func hinted(r hostileRun, kind, text string) bool {
	for _, h := range r.report.Hints {
		if h.Kind == kind && strings.Contains(h.Text, text) {
			return true
		}
	}
	return false
}
