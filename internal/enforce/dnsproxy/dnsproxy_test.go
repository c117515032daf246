package dnsproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

// upstream is a loopback resolver that answers every A query with addr
// and counts the queries it got.
type upstream struct {
	addr    netip.AddrPort
	queries atomic.Int32
}

func startUpstream(t *testing.T, answer netip.Addr) *upstream {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			u.queries.Add(1)
			var q layers.DNS
			if err := q.DecodeFromBytes(buf[:n], gopacket.NilDecodeFeedback); err != nil || len(q.Questions) != 1 {
				continue
			}
			r := layers.DNS{ID: q.ID, QR: true, RD: q.RD, RA: true, Questions: q.Questions,
				Answers: []layers.DNSResourceRecord{
					{Name: q.Questions[0].Name, Type: layers.DNSTypeCNAME, Class: layers.DNSClassIN, TTL: 60, CNAME: []byte("edge.cdn.example")},
					{Name: []byte("edge.cdn.example"), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: answer.AsSlice()},
				}}
			sb := gopacket.NewSerializeBuffer()
			if err := r.SerializeTo(sb, gopacket.SerializeOptions{FixLengths: true}); err != nil {
				t.Error(err)
				return
			}
			c.WriteToUDPAddrPort(sb.Bytes(), from)
		}
	}()
	return u
}

// policy allows names in allow; Answered records what it was given.
type policy struct {
	allow map[string]bool
	mu    sync.Mutex // guards answered
	// answered is what Answered saw, in order.
	answered []string
}

func (p *policy) Ask(name string) bool { return p.allow[name] }

func (p *policy) Answered(name string, cnames []string, addrs []netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := name
	for _, c := range cnames {
		s += " cname " + c
	}
	for _, a := range addrs {
		s += " " + a.String()
	}
	p.answered = append(p.answered, s)
	return true
}

func query(t *testing.T, name string, id uint16) []byte {
	t.Helper()
	q := layers.DNS{ID: id, RD: true, Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	sb := gopacket.NewSerializeBuffer()
	if err := q.SerializeTo(sb, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	return sb.Bytes()
}

func TestProxy(t *testing.T) {
	up := startUpstream(t, netip.MustParseAddr("192.0.2.10"))
	pol := &policy{allow: map[string]bool{"api.shopvendor.example": true}}
	var mu sync.Mutex
	var seen []Exchange
	p, err := Listen(Config{Upstreams: []netip.AddrPort{up.addr}, Policy: pol, Observe: func(x Exchange) {
		mu.Lock()
		seen = append(seen, x)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	})

	ask := func(tcp bool, name string, id uint16) (rcode uint8, addrs []string, took time.Duration) {
		t.Helper()
		network := "udp"
		if tcp {
			network = "tcp"
		}
		c, err := net.Dial(network, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.Port()).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		q := query(t, name, id)
		var reply []byte
		if tcp {
			if _, err := c.Write(tcpFrame(q)); err != nil {
				t.Fatal(err)
			}
			reply, err = readTCPMsg(c)
		} else {
			if _, err := c.Write(q); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			var n int
			n, err = c.Read(buf)
			reply = buf[:n]
		}
		if err != nil {
			t.Fatalf("%s %s: %v", network, name, err)
		}
		took = time.Since(start)
		var m dnsmsg.Msg
		if err := m.Unpack(reply); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if m.ID != id || !m.Response || string(m.QName) != name {
			t.Errorf("reply id %d response %v question %q; want %d, true, %q", m.ID, m.Response, m.QName, id, name)
		}
		for _, rr := range m.Answers {
			if rr.Addr.IsValid() {
				addrs = append(addrs, rr.Addr.String())
			}
		}
		return m.Rcode, addrs, took
	}

	for _, tcp := range []bool{false, true} {
		rc, addrs, _ := ask(tcp, "api.shopvendor.example", 0x1234)
		if rc != 0 || !cmp.Equal(addrs, []string{"192.0.2.10"}) {
			t.Errorf("allowed name (tcp %v): rcode %d addrs %v; want 0 [192.0.2.10]", tcp, rc, addrs)
		}
		before := up.queries.Load()
		rc, addrs, took := ask(tcp, "telemetry.shopvendor.example", 0x4321)
		if rc != rcodeRefused || len(addrs) != 0 {
			t.Errorf("refused name (tcp %v): rcode %d addrs %v; want REFUSED and none", tcp, rc, addrs)
		}
		if took > 500*time.Millisecond {
			t.Errorf("refusal took %v; it must be immediate", took)
		}
		if up.queries.Load() != before {
			t.Errorf("a refused name was forwarded to the resolver")
		}
	}
	pol.mu.Lock()
	want := []string{"api.shopvendor.example cname edge.cdn.example 192.0.2.10", "api.shopvendor.example cname edge.cdn.example 192.0.2.10"}
	if diff := cmp.Diff(want, pol.answered); diff != "" {
		t.Errorf("Answered calls (-want +got):\n%s", diff)
	}
	pol.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 {
		t.Fatalf("observed %d exchanges, want 4", len(seen))
	}
	for _, x := range seen {
		if x.Reply == nil || x.ReplyTime < x.QueryTime || x.Upstream != up.addr || !x.Client.Addr().IsLoopback() {
			t.Errorf("exchange %+v: want a reply after the query, from upstream %v, client on loopback", x, up.addr)
		}
	}
}

// A dead resolver turns into SERVFAIL within the timeout, not silence.
func TestProxyUpstreamDown(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // reads nothing: a silent resolver
	p, err := Listen(Config{Upstreams: []netip.AddrPort{c.LocalAddr().(*net.UDPAddr).AddrPort()},
		Policy: &policy{allow: map[string]bool{"a.example": true}}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Serve(ctx)
	conn, err := net.Dial("udp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.Port()).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	conn.Write(query(t, "a.example", 7))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if rc := buf[3] & 0x0f; n < 12 || rc != rcodeServFail {
		t.Errorf("rcode %d, want SERVFAIL", rc)
	}
}

// realQueries returns the DNS queries of the recorded captures.
func realQueries(tb testing.TB) [][]byte {
	tb.Helper()
	return corpustest.RecordedQueries(tb)
}

// FuzzReply: whatever a client sends, a refusal parses, keeps the ID and
// the question when there is one, and is never longer than the query.
func FuzzReply(f *testing.F) {
	for _, q := range realQueries(f) {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		if len(q) < 12 {
			return
		}
		r := Reply(q, rcodeRefused)
		if len(r) > len(q) {
			t.Fatalf("reply of %d bytes to a query of %d", len(r), len(q))
		}
		var m dnsmsg.Msg
		if err := m.Unpack(r); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if m.ID != uint16(q[0])<<8|uint16(q[1]) || !m.Response || m.Rcode != rcodeRefused || m.ANCount != 0 {
			t.Fatalf("reply header %+v", m)
		}
		var qm dnsmsg.Msg
		if qm.Unpack(q); qm.QuestionOK() && questionEnd(q) > 0 && string(m.QName) != string(qm.QName) {
			t.Fatalf("question %q, want %q", m.QName, qm.QName)
		}
	})
}

// TestProxyBounded: with an upstream that never answers, a flood of
// queries holds at most MaxInFlight of them (and their buffers); the rest
// are answered SERVFAIL at once and counted, and every one is observed.
func TestProxyBounded(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var forwarded atomic.Int32
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := silent.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			forwarded.Add(1)
		}
	}()
	var observed atomic.Int32
	const limit, n = 4, 60
	p, err := Listen(Config{Upstreams: []netip.AddrPort{silent.LocalAddr().(*net.UDPAddr).AddrPort()},
		Policy: &policy{allow: map[string]bool{"flood.example": true}}, Timeout: 2 * time.Second, MaxInFlight: limit,
		Observe: func(Exchange) { observed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	c, err := net.Dial("udp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.Port()).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := c.Write(query(t, "flood.example", uint16(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(1 * time.Second))
	servfail := 0
	buf := make([]byte, 512)
	for servfail < n-limit {
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		if k >= 4 && buf[3]&0x0f == rcodeServFail {
			servfail++
		}
	}
	if servfail != n-limit {
		t.Errorf("%d queries answered SERVFAIL within 1 s, want %d (past the %d in flight)", servfail, n-limit, limit)
	}
	if got := p.Stats().Overloaded; got != n-limit {
		t.Errorf("Stats().Overloaded = %d, want %d", got, n-limit)
	}
	if got := forwarded.Load(); got > limit {
		t.Errorf("%d queries forwarded at once, want at most %d", got, limit)
	}
	cancel()
	<-served
	if got := observed.Load(); got != n {
		t.Errorf("%d exchanges observed, want all %d", got, n)
	}
}
