package analyze

import (
	"fmt"
	"net/netip"
	"testing"

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
	if l.Transport != "tcp" || l.Outcome != report.Answered || l.PID == nil || *l.PID != 9 {
		t.Errorf("lookup %+v, want an answered tcp lookup by pid 9", l)
	}
	if len(rep.Connections) != 1 || rep.Connections[0].Host != "tcp.example" {
		t.Errorf("connection not named from the relayed answer: %+v", rep.Connections)
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
