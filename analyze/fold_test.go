package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

var resolver = netip.MustParseAddr("192.0.2.53")

// dnsPacket builds a DNS query, or its answer with addr, as a UDP packet.
func dnsPacket(t *testing.T, sec float64, id uint16, name string, answer netip.Addr, response bool) *event.Packet {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: response})
	b.StartQuestions()
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	if err := b.Question(q); err != nil {
		t.Fatal(err)
	}
	if response && answer.IsValid() {
		b.StartAnswers()
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: answer.As4()}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	p := &event.Packet{Time: at(sec), Proto: event.ProtoUDP, Src: app, Dst: resolver, SrcPort: 40000 + id, DstPort: 53, Payload: msg}
	if response {
		p.Src, p.Dst, p.SrcPort, p.DstPort = resolver, app, 53, 40000+id
	}
	return p
}

// TestFoldingKeepsEveryCall: past the record limit calls are folded, and
// past the fold table's bound gathered per outcome, but every call is still
// counted in some record.
func TestFoldingKeepsEveryCall(t *testing.T) {
	a := New(Config{LocalAny: true, MaxRecords: 3})
	const n = 40
	for i := 0; i < n; i++ {
		sec := float64(i)
		name := fmt.Sprintf("host%d.example", i%12)
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 12)})
		a.Packet(dnsPacket(t, sec, uint16(i), name, addr, false))
		if i%5 != 0 { // every fifth lookup is never answered
			a.Packet(dnsPacket(t, sec+0.001, uint16(i), name, addr, true))
		}
		port := uint16(20000 + i)
		a.Packet(seg(sec+0.01, app, port, addr, 443, syn, 1, 0, ""))
		if i%3 != 0 {
			a.Packet(seg(sec+0.02, addr, 443, app, port, synack, 9, 2, ""))
			a.Packet(seg(sec+0.03, app, port, addr, 443, ackf, 2, 10, ""))
		}
	}
	r := a.Finish()
	conns, looks := map[string]int{}, map[string]int{}
	for _, c := range r.Connections {
		conns[c.Outcome.String()] += c.Count
	}
	for _, l := range r.Lookups {
		looks[l.Outcome.String()] += l.Count
	}
	if conns["established"] != 26 || conns["timeout"]+conns["pending"] != 14 {
		t.Errorf("connections by outcome %v, want 26 established and 14 unanswered", conns)
	}
	if looks["answered"] != 32 || looks["timeout"]+looks["pending"] != 8 {
		t.Errorf("lookups by outcome %v, want 32 answered and 8 unanswered", looks)
	}
	if r.Stats.RecordsFolded == 0 || r.Stats.RecordsDropped == 0 {
		t.Errorf("stats %+v: want folded and gathered records counted", r.Stats)
	}
}

// TestDNSMessageRelayed: messages relayed outside packet flows (egress
// run's DNS proxy) make lookups, over TCP too.
func TestDNSMessageRelayed(t *testing.T) {
	a := New(Config{LocalAny: true})
	addr := netip.MustParseAddr("203.0.113.7")
	q := dnsPacket(t, 0, 7, "tcp.example", addr, false)
	r := dnsPacket(t, 0.002, 7, "tcp.example", addr, true)
	q.Proto, r.Proto = event.ProtoTCP, event.ProtoTCP
	q.Proc = &event.Process{PID: 9, Comm: "app"}
	a.DNSMessage(q, q.Payload, true)
	a.DNSMessage(r, r.Payload, true)
	a.Packet(seg(0.01, app, 40000, addr, 443, syn, 1, 0, ""))
	rep := a.Finish()
	if len(rep.Lookups) != 1 {
		t.Fatalf("%d lookups, want 1", len(rep.Lookups))
	}
	l := rep.Lookups[0]
	if l.Transport != "tcp" || l.Outcome.String() != "answered" || l.PID == nil || *l.PID != 9 {
		t.Errorf("lookup %+v, want an answered tcp lookup by pid 9", l)
	}
	if len(rep.Connections) != 1 || rep.Connections[0].Host != "tcp.example" {
		t.Errorf("connection not named from the relayed answer: %+v", rep.Connections)
	}
}

// TestDualStackHost: the app accepts the login on its IPv4 address, looks
// the vendor up over IPv4 and calls it over IPv6; the two addresses are
// one host, so the login is inbound (not an outbound call of the admin's).
func TestDualStackHost(t *testing.T) {
	app6 := netip.MustParseAddr("2001:db8:1::2")
	vendor6 := netip.MustParseAddr("2001:db8:5::10")
	a := New(Config{})
	a.Packet(seg(0, router, 50000, app, 8080, syn, 1, 0, ""))
	a.Packet(seg(0.001, app, 8080, router, 50000, synack, 2, 2, ""))
	a.Packet(seg(0.002, router, 50000, app, 8080, ackf, 2, 3, ""))
	q := dnsPacket(t, 0.01, 1, "api.vendor.test", netip.Addr{}, false)
	a.Packet(q)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, Response: true})
	b.StartQuestions()
	qn := dnsmessage.Question{Name: dnsmessage.MustNewName("api.vendor.test."), Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET}
	if err := b.Question(qn); err != nil {
		t.Fatal(err)
	}
	b.StartAnswers()
	if err := b.AAAAResource(dnsmessage.ResourceHeader{Name: qn.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AAAAResource{AAAA: vendor6.As16()}); err != nil {
		t.Fatal(err)
	}
	msg, _ := b.Finish()
	a.Packet(&event.Packet{Time: at(0.011), Proto: event.ProtoUDP, Src: resolver, Dst: app, SrcPort: 53, DstPort: q.SrcPort, Payload: msg})
	a.Packet(seg(0.02, app6, 40000, vendor6, 443, syn, 100, 0, ""))
	a.Packet(seg(1.02, app6, 40000, vendor6, 443, syn, 100, 0, ""))
	r := a.Finish()
	if r.Local.Basis != "inferred-servers" || !cmp.Equal(r.Local.Addresses, []string{"198.18.0.2", "2001:db8:1::2"}) {
		t.Errorf("local = %+v, want the app's two addresses", r.Local)
	}
	if len(r.Connections) != 1 || r.Connections[0].DstIP != vendor6 || r.Stats.InboundAttempts != 1 {
		t.Errorf("connections %+v inbound %d, want only the vendor call and the login inbound", r.Connections, r.Stats.InboundAttempts)
	}
	if r.HostsSeen != 0 || strings.Contains(r.Headline, "hosts") {
		t.Errorf("one dual-stack host reported as several: %q", r.Headline)
	}
}

// TestPerHostHeadline: with several local hosts the headline names the
// hosts that lost the most time, with their share of their own active time
// and their culprits, and the report lists them.
func TestPerHostHeadline(t *testing.T) {
	other := netip.MustParseAddr("198.18.0.3")
	a := New(Config{Local: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}})
	// app waits 3 s on the vendor, then works 1 s; other gets a quick refusal.
	a.Packet(seg(0, app, 40000, vendor, 443, syn, 100, 0, ""))
	a.Packet(seg(1, app, 40000, vendor, 443, syn, 100, 0, ""))
	a.Packet(seg(3, app, 40001, router, 80, syn, 200, 0, ""))
	a.Packet(seg(3.001, router, 80, app, 40001, synack, 9, 201, ""))
	a.Packet(seg(3.002, app, 40001, router, 80, ackf, 201, 10, ""))
	a.Packet(seg(4, app, 40001, router, 80, ackf|event.TCPFin, 201, 10, ""))
	a.Packet(seg(0.5, other, 41000, vendor, 81, syn, 300, 0, ""))
	a.Packet(seg(0.501, vendor, 81, other, 41000, rstack, 0, 301, ""))
	r := a.Finish()
	if r.HostsSeen != 2 || len(r.Hosts) != 2 || r.Hosts[0].Address.String() != "198.18.0.2" {
		t.Fatalf("hosts %d %+v, want 2 with the app first", r.HostsSeen, r.Hosts)
	}
	want := "2 hosts made 3 outbound connections and 0 lookups in the 4.0 s window; most time lost: " +
		"198.18.0.2 lost 3.0 s of its 3.0 s active (100%) to 198.51.100.10:443 (1 unanswered call, up to ~3.0 s); " +
		"198.18.0.3 lost 1.0 ms of its 1.0 ms active (100%) to 198.51.100.10:81 (1 refused call, up to 1.0 ms)"
	if r.Headline != want {
		t.Errorf("headline\n got %q\nwant %q", r.Headline, want)
	}
}

// TestByStart: the in-place ordering equals a stable sort by start.
func TestByStart(t *testing.T) {
	type rec struct {
		start time.Time
		n     int
	}
	var rs, want []rec
	for i := 0; i < 500; i++ {
		rs = append(rs, rec{time.Unix(int64((i*7919)%97), 0), i})
	}
	want = append(want, rs...)
	sort.SliceStable(want, func(i, j int) bool { return want[i].start.Before(want[j].start) })
	got := byStart(rs, func(r *rec) time.Time { return r.start })
	if !cmp.Equal(want, got, cmp.AllowUnexported(rec{})) {
		t.Errorf("byStart differs from a stable sort")
	}
}

type settledCalls struct {
	conns, lookups map[string]int // by destination
	n              int
}

func (s *settledCalls) Connection(c *report.Connection) { s.conns[c.Host] += c.Count; s.n++ }
func (s *settledCalls) Lookup(l *report.Lookup)         { s.lookups[l.Name] += l.Count; s.n++ }

// TestSettleFolded: with SettleFolded, every call reaches Settled once, with
// its own destination, however far past the record and fold limits (the
// agent); without it, folded calls are counted in the report only.
func TestSettleFolded(t *testing.T) {
	for _, all := range []bool{false, true} {
		s := &settledCalls{conns: map[string]int{}, lookups: map[string]int{}}
		a := New(Config{LocalAny: true, MaxRecords: 2, Settled: s, SettleFolded: all})
		const n = 60
		for i := 0; i < n; i++ {
			sec := float64(i)
			name := fmt.Sprintf("host%d.example", i%20)
			addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 20)})
			a.Packet(dnsPacket(t, sec, uint16(i), name, addr, false))
			a.Packet(dnsPacket(t, sec+0.001, uint16(i), name, addr, true))
			port := uint16(20000 + i)
			a.Packet(seg(sec+0.01, app, port, addr, 443, syn, 1, 0, ""))
			a.Packet(seg(sec+0.02, addr, 443, app, port, synack, 9, 2, ""))
			a.Packet(seg(sec+0.03, app, port, addr, 443, ackf, 2, 10, ""))
		}
		a.Finish()
		if !all {
			if s.n >= 2*n {
				t.Errorf("without SettleFolded: %d calls settled, want fewer than %d", s.n, 2*n)
			}
			continue
		}
		if s.n != 2*n {
			t.Errorf("SettleFolded: %d calls settled, want %d", s.n, 2*n)
		}
		for i := 0; i < 20; i++ {
			name := fmt.Sprintf("host%d.example", i)
			if s.conns[name] != 3 || s.lookups[name] != 3 {
				t.Errorf("%s: %d connections and %d lookups settled, want 3 and 3", name, s.conns[name], s.lookups[name])
			}
		}
		if s.conns[OtherDestinations] != 0 || s.lookups[OtherDestinations] != 0 {
			t.Errorf("a settled call named %q", OtherDestinations)
		}
	}
}
