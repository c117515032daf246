package enforce

import (
	"net/netip"
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

func TestTally(t *testing.T) {
	var ta Tally
	dst := netip.MustParseAddrPort("198.51.100.7:9")
	ta.Add(event.Blocked{Proc: &event.Process{PID: 5, Comm: "app"}, Proto: 17, Dst: dst, Kind: event.BlockedRefused})
	ta.Add(event.Blocked{Proc: &event.Process{PID: 5, Comm: "app"}, Proto: 17, Dst: dst, Kind: event.BlockedRefused})
	ta.Add(event.Blocked{Proc: &event.Process{PID: 5, Comm: "app"}, Proto: 17, Dst: dst, Kind: event.BlockedCall})
	ta.Add(event.Blocked{Proc: &event.Process{PID: 6, Comm: "ping"}, Proto: 1, Dst: netip.MustParseAddrPort("198.51.100.8:0"), Kind: event.BlockedPacket, Refused: true})
	ta.Add(event.Blocked{Proto: 253, Dst: netip.MustParseAddrPort("198.51.100.9:0"), Kind: event.BlockedPacket})
	r := &report.Report{Connections: []report.Connection{{DstIP: netip.MustParseAddr("203.0.113.1"), Proto: "tcp", Outcome: report.Rejected}}}
	ta.Merge(r, map[netip.Addr]string{dst.Addr(): "x.example"}, nil, func(*event.Blocked) uint64 { return 7 })
	type row struct {
		proto       string
		outcome     report.Outcome
		basis, host string
		count       int
		pid         bool
	}
	var got []row
	for _, c := range r.Connections {
		got = append(got, row{c.Proto, c.Outcome, c.EndBasis, c.Host, c.Count, c.PID != nil})
	}
	want := []row{
		{"tcp", report.Rejected, "", "", 0, false},
		{"udp", report.Rejected, report.BasisBlockedConnect, "x.example", 2, true},
		{"udp", Sent, BasisCall, "x.example", 7, true},
		{"icmp", report.Rejected, BasisDropped, "", 7, true},
		{"ip-proto-253", Sent, BasisPacket, "", 7, false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if b, _ := r.Connections[0].SrcIP.MarshalText(); len(b) != 0 {
		t.Errorf("a refused connect's src_ip is %q, want empty", r.Connections[0].SrcIP)
	}
}

// TestTallyPastLimit: refusals past MaxRecords distinct calls are counted
// in one record and in the stats, none silently dropped.
func TestTallyPastLimit(t *testing.T) {
	var ta Tally
	const n = MaxRecords + 2345
	for i := range n {
		ta.Add(event.Blocked{Proc: &event.Process{PID: 1, Comm: ""}, Proto: 17, Dst: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(1+i)), Kind: event.BlockedRefused})
	}
	r := &report.Report{}
	ta.Merge(r, nil, nil, nil)
	total := 0
	for _, c := range r.Connections {
		total += c.Count
	}
	if total != n || len(r.Connections) != MaxRecords+1 || r.Stats.RecordsDropped != 2345 {
		t.Errorf("%d records counting %d calls, %d dropped in stats; want %d records counting %d, 2345",
			len(r.Connections), total, r.Stats.RecordsDropped, MaxRecords+1, n)
	}
	last := r.Connections[len(r.Connections)-1]
	if last.Host != OtherDestinations || last.Count != 2345 || !last.IsCatchAll() || last.Destinations != 2345 {
		t.Errorf("the overflow record (want a catch-all of 2345 calls to 2345 destinations): %+v", last)
	}
}

// TestTallyReportedPastLimit: calls let through past MaxRecords are counted
// apart from refused ones, with the kernel's repeat counts.
func TestTallyReportedPastLimit(t *testing.T) {
	var ta Tally
	for i := range MaxRecords + 10 {
		ta.Add(event.Blocked{Proc: &event.Process{PID: 1, Comm: ""}, Proto: 17, Dst: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(1+i)), Kind: event.BlockedCall})
	}
	ta.Add(event.Blocked{Proc: &event.Process{PID: 1, Comm: ""}, Proto: 17, Dst: netip.MustParseAddrPort("203.0.113.6:1"), Kind: event.BlockedRefused})
	r := &report.Report{}
	ta.Merge(r, nil, nil, func(*event.Blocked) uint64 { return 3 })
	var sent, rejected int
	for _, c := range r.Connections {
		if c.Host != OtherDestinations {
			continue
		}
		switch c.Outcome {
		case Sent:
			sent += c.Count
		case report.Rejected:
			rejected += c.Count
		}
	}
	// 10 let-through calls past the limit, each seen 3 times; 1 refusal.
	if sent != 30 || rejected != 1 || r.Stats.RecordsDropped != 31 {
		t.Errorf("past the limit: %d sent, %d rejected, %d in stats; want 30, 1, 31", sent, rejected, r.Stats.RecordsDropped)
	}
}
