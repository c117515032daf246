//go:build linux

package block

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/internal/cgrouprun"
	"github.com/egress-dev/egress/internal/testkit/testnet"
)

const helperEnv = "EGRESS_BLOCK_HELPER_PORT"

// TestHelperInCgroup is not a test: TestPrivilegedBlock runs the test
// binary with it inside the cgroup and a namespace that has only loopback.
// It plays both the app and, on 127.0.0.1:PORT, the DNS proxy (an echo),
// and prints what each call got.
func TestHelperInCgroup(t *testing.T) {
	port, err := strconv.Atoi(os.Getenv(helperEnv))
	if err != nil {
		t.Skip("run by TestPrivilegedBlock")
	}
	proxy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	defer proxy.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := proxy.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			proxy.WriteToUDPAddrPort(append([]byte("answer to "), buf[:n]...), from)
		}
	}()
	errno := func(err error) string {
		var en syscall.Errno
		if errors.As(err, &en) {
			return en.Error()
		}
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		fmt.Println("socket:", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	// Unconnected DNS: steered to the proxy, answered "from" the server.
	_, err = c.WriteToUDPAddrPort([]byte("query"), netip.MustParseAddrPort("192.0.2.53:53"))
	fmt.Println("dns send:", errno(err))
	buf := make([]byte, 512)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	fmt.Printf("dns reply: %s from %v (%s)\n", buf[:n], from, errno(err))
	_, err = c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("203.0.113.5:9"))
	fmt.Println("udp to a refused address:", errno(err))
	_, err = c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("198.51.100.7:9"))
	fmt.Println("udp to an allowed address:", errno(err))
	_, err = net.DialTimeout("tcp", "203.0.113.5:80", 3*time.Second)
	fmt.Println("tcp to a refused address:", errno(err))
	_, err = net.DialTimeout("tcp", "198.51.100.7:443", 3*time.Second)
	fmt.Println("tcp to an allowed address, port 443:", errno(err))
	_, err = net.DialTimeout("tcp", "198.51.100.7:80", 3*time.Second)
	fmt.Println("tcp to an allowed address, port 80:", errno(err))
	_, err = net.DialTimeout("tcp", "[2001:db8::5]:80", 3*time.Second)
	fmt.Println("tcp to a refused IPv6 address:", errno(err))
}

// TestPrivilegedBlock attaches the programs to a new cgroup and runs the
// helper in it: DNS is steered to the proxy port and its answers come back
// from the server's address; what the allow map lacks fails with EPERM at
// once and is reported; what it holds goes on (and meets the namespace's
// lack of routes).
func TestPrivilegedBlock(t *testing.T) {
	n := testnet.NewForTest(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ns, err := n.Namespace(ctx, "blk")
	if err != nil {
		t.Fatal(err)
	}
	g, err := cgrouprun.New("egress-blocktest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	})
	const port = 5353
	b, err := Open(Options{Cgroup: g.Path, CgroupID: g.ID, Enforce: true, AllowLoopback: true, ProxyPort: port})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Allow(netip.MustParsePrefix("198.51.100.0/24"), 0, 17); err != nil {
		t.Fatal(err)
	}
	if err := b.Allow(netip.MustParsePrefix("198.51.100.7/32"), 443, 6); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Blocked
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- b.Run(runCtx, func(bl Blocked) {
			mu.Lock()
			got = append(got, bl)
			mu.Unlock()
		})
	}()

	cmd := g.Command(ctx, "ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestHelperInCgroup$", "-test.v=false")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, port))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, ":") && !strings.HasPrefix(l, "ok") && !strings.HasPrefix(l, "PASS") {
			lines = append(lines, l)
		}
	}
	want := []string{
		"dns send: ok",
		"dns reply: answer to query from 192.0.2.53:53 (ok)",
		"udp to a refused address: operation not permitted",
		"udp to an allowed address: network is unreachable",
		"tcp to a refused address: operation not permitted",
		"tcp to an allowed address, port 443: network is unreachable",
		"tcp to an allowed address, port 80: operation not permitted",
		"tcp to a refused IPv6 address: operation not permitted",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("the helper's calls (-want +got):\n%s\n%s", diff, out)
	}
	if took > 2*time.Second {
		t.Errorf("the helper took %v: a refusal must not wait", took)
	}
	time.Sleep(100 * time.Millisecond) // let the last records reach the ring buffer
	stop()
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	type rec struct {
		Kind    uint8
		Refused bool
		Proto   uint8
		Dst     string
	}
	var recs []rec
	for _, bl := range got {
		recs = append(recs, rec{bl.Kind, bl.Refused, bl.Proto, bl.Dst.String()})
		if bl.PID <= 0 || bl.Comm == "" || time.Since(time.Unix(0, bl.Time)).Abs() > time.Minute {
			t.Errorf("record %+v: want the helper's pid and comm and a current time", bl)
		}
	}
	// The allowed UDP send is reported for the policy to judge (the
	// tracepoints do not see UDP); the allowed TCP connect is not (they do).
	wantRecs := []rec{{KindRefused, true, 17, "203.0.113.5:9"}, {KindCall, false, 17, "198.51.100.7:9"},
		{KindRefused, true, 6, "203.0.113.5:80"}, {KindRefused, true, 6, "198.51.100.7:80"}, {KindRefused, true, 6, "[2001:db8::5]:80"}}
	if diff := cmp.Diff(wantRecs, recs); diff != "" {
		t.Errorf("blocked records (-want +got):\n%s", diff)
	}
	if b.Lost() != 0 {
		t.Errorf("%d records lost", b.Lost())
	}
}

const floodEnv = "EGRESS_BLOCK_FLOOD"

// TestHelperFlood is not a test: TestPrivilegedBlockNoSilentLoss runs it in
// the cgroup to send N refused datagrams to distinct ports.
func TestHelperFlood(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(floodEnv))
	if err != nil {
		t.Skip("run by TestPrivilegedBlockNoSilentLoss")
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		fmt.Println("socket:", err)
		return
	}
	defer c.Close()
	refused := 0
	for i := range n {
		_, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(1+i%65000)))
		if errors.Is(err, syscall.EPERM) {
			refused++
		}
	}
	fmt.Printf("refused %d\n", refused)
}

// TestPrivilegedBlockNoSilentLoss: more refusals than the ring buffer holds,
// with nobody reading meanwhile: every one is either a record or counted
// in Lost.
func TestPrivilegedBlockNoSilentLoss(t *testing.T) {
	n := testnet.NewForTest(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns, err := n.Namespace(ctx, "flood")
	if err != nil {
		t.Fatal(err)
	}
	g, err := cgrouprun.New("egress-blocktest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	})
	b, err := Open(Options{Cgroup: g.Path, CgroupID: g.ID, Enforce: true, AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const sends = 40000 // the 1 MiB ring holds about 16,000 records
	cmd := g.Command(ctx, "ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestHelperFlood$", "-test.v=false")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", floodEnv, sends))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("refused %d\n", sends)) {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	// Only now read what the ring buffer kept.
	records := 0
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- b.Run(runCtx, func(Blocked) { records++ }) }()
	time.Sleep(500 * time.Millisecond)
	stop()
	<-ran
	lost := b.Lost()
	if lost == 0 || uint64(records)+lost != sends {
		t.Errorf("%d records read and %d counted lost, want %d in all, some of them lost", records, lost, sends)
	}
	t.Logf("%d records, %d lost", records, lost)
}
