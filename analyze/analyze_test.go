package analyze

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

var (
	app    = netip.MustParseAddr("198.18.0.2")
	vendor = netip.MustParseAddr("198.51.100.10")
	router = netip.MustParseAddr("198.18.0.1")
	t0     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano()
)

func at(sec float64) int64 { return t0 + int64(sec*1e9) }

// seg builds a TCP segment.
func seg(t float64, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8, seq, ack uint32, payload string) *event.Packet {
	return &event.Packet{Time: at(t), Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: event.ProtoTCP,
		Flags: flags, Seq: seq, Ack: ack, Payload: []byte(payload)}
}

// ackOut is a bare ACK the capturing host sent on a flow whose start was
// not captured (a database connection, say).
func ackOut(t float64, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) *event.Packet {
	p := seg(t, src, sport, dst, dport, event.TCPAck, 7, 7, "")
	p.Dir = event.DirOut
	return p
}

const (
	syn    = event.TCPSyn
	synack = event.TCPSyn | event.TCPAck
	ackf   = event.TCPAck
	rst    = event.TCPRst
	rstack = event.TCPRst | event.TCPAck
)

type connSummary struct {
	Dst      string
	Outcome  string
	Attempts int
	Blocked  float64
	Inferred bool
	Basis    string
}

func summarize(r *report.Report) []connSummary {
	var out []connSummary
	for _, c := range r.Connections {
		out = append(out, connSummary{Dst: c.Dst().String(), Outcome: c.Outcome.String(), Attempts: c.Attempts, Blocked: c.BlockedMS, Inferred: c.Inferred, Basis: c.EndBasis})
	}
	return out
}

func run(cfg Config, pkts ...*event.Packet) *report.Report {
	a := New(cfg)
	for _, p := range pkts {
		a.Packet(p)
	}
	return a.Finish()
}

func TestConnectionOutcomes(t *testing.T) {
	any := Config{LocalAny: true}
	tests := []struct {
		name string
		cfg  Config
		pkts []*event.Packet
		want []connSummary
	}{
		{
			name: "established",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 443, syn, 100, 0, ""),
				seg(0.002, vendor, 443, app, 40000, synack, 900, 101, ""),
				seg(0.0021, app, 40000, vendor, 443, ackf, 101, 901, ""),
			},
			want: []connSummary{{"198.51.100.10:443", "established", 1, 2, false, "answer"}},
		},
		{
			name: "refused by RST",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 81, syn, 100, 0, ""),
				seg(0.001, vendor, 81, app, 40000, rstack, 0, 101, ""),
			},
			want: []connSummary{{"198.51.100.10:81", "refused", 1, 1, false, "answer"}},
		},
		{
			name: "syn-ack then client reset is aborted",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 22, syn, 100, 0, ""),
				seg(0.001, vendor, 22, app, 40000, synack, 5, 101, ""),
				seg(0.0015, app, 40000, vendor, 22, rst, 101, 0, ""),
			},
			want: []connSummary{{"198.51.100.10:22", "aborted", 1, 1, false, "answer"}},
		},
		{
			name: "syn-ack captured before its syn",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0.001, vendor, 443, app, 40000, synack, 900, 101, ""),
				seg(0.0011, app, 40000, vendor, 443, syn, 100, 0, ""),
				seg(0.002, app, 40000, vendor, 443, ackf, 101, 901, ""),
			},
			want: []connSummary{{"198.51.100.10:443", "established", 1, 0, false, "answer"}},
		},
		{
			name: "dropped syns end at the host's next action",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(2, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(3.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(4.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(5.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(6.002, app, 8080, router, 50000, ackf|event.TCPPsh, 1, 1, "HTTP/1.1 200 OK\r\n"),
			},
			want: []connSummary{
				{"198.51.100.10:80", "timeout", 3, 3001, true, "next-action"},
				{"198.51.100.10:443", "timeout", 3, 3001, true, "next-action"},
			},
		},
		{
			name: "bare ACKs on other flows are not a next action",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				ackOut(0.5, app, 5432, router, 41000),
				seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
				ackOut(1.5, app, 5432, router, 41000),
				seg(2, app, 40000, vendor, 80, syn, 100, 0, ""),
				ackOut(2.5, app, 5432, router, 41000),
				seg(3.001, app, 8080, router, 50000, ackf|event.TCPPsh, 1, 1, "HTTP/1.1 200 OK\r\n"),
			},
			want: []connSummary{{"198.51.100.10:80", "timeout", 3, 3001, true, "next-action"}},
		},
		{
			name: "parallel calls do not end each other",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(0.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(1.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(2, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(2.001, app, 40001, vendor, 443, syn, 500, 0, ""),
				seg(3.01, app, 8080, router, 50000, ackf|event.TCPPsh, 1, 1, "HTTP/1.1 200 OK\r\n"),
			},
			want: []connSummary{
				{"198.51.100.10:80", "timeout", 3, 3010, true, "next-action"},
				{"198.51.100.10:443", "timeout", 3, 3009, true, "next-action"},
			},
		},
		{
			name: "capture ends while the kernel still retransmits",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(1.5, router, 1, app, 2, ackf, 1, 1, ""),
			},
			want: []connSummary{{"198.51.100.10:80", "pending", 2, 1500, false, "window-end"}},
		},
		{
			name: "silence past the schedule is a timeout",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(9, router, 1, app, 2, ackf, 1, 1, ""),
			},
			want: []connSummary{{"198.51.100.10:80", "timeout", 2, 2000, true, "retransmit-schedule"}},
		},
		{
			name: "client reset ends a dropped attempt",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(0.5, app, 40000, vendor, 80, rst, 101, 0, ""),
			},
			want: []connSummary{{"198.51.100.10:80", "timeout", 1, 500, false, "client-rst"}},
		},
		{
			name: "a new ISN on the same ports is a new attempt",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
				seg(3, app, 40000, vendor, 80, syn, 7000, 0, ""),
				seg(3.001, vendor, 80, app, 40000, synack, 1, 7001, ""),
				seg(3.002, app, 40000, vendor, 80, ackf, 7001, 2, ""),
			},
			want: []connSummary{
				{"198.51.100.10:80", "timeout", 1, 3000, true, "next-action"},
				{"198.51.100.10:80", "established", 1, 1, false, "answer"},
			},
		},
		{
			name: "one-sided capture: the client went on",
			cfg:  any,
			pkts: []*event.Packet{
				seg(0, app, 40000, vendor, 22, syn, 100, 0, ""),
				seg(0.01, app, 40000, vendor, 22, ackf, 101, 5, ""),
			},
			want: []connSummary{{"198.51.100.10:22", "established", 1, 0, true, "peers-continued"}},
		},
		{
			name: "inbound attempts are not egress",
			cfg:  Config{Local: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}},
			pkts: []*event.Packet{
				seg(0, router, 50000, app, 8080, syn, 1, 0, ""),
				seg(0.001, app, 8080, router, 50000, synack, 2, 2, ""),
				seg(0.002, router, 50000, app, 8080, ackf, 2, 3, ""),
			},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(run(tc.cfg, tc.pkts...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("connections (-want +got):\n%s", diff)
			}
		})
	}
}

func TestICMPRejects(t *testing.T) {
	icmp := &event.Packet{Time: at(0.002), Src: router, Dst: app, Proto: event.ProtoICMP, ICMPType: 3, ICMPCode: 13,
		Quoted: event.Quoted{Valid: true, Proto: event.ProtoTCP, Src: app, Dst: vendor, SrcPort: 40000, DstPort: 80, Seq: 100, HasSeq: true}}
	r := run(Config{LocalAny: true}, seg(0, app, 40000, vendor, 80, syn, 100, 0, ""), icmp)
	if len(r.Connections) != 1 {
		t.Fatalf("got %d connections, want 1", len(r.Connections))
	}
	c := r.Connections[0]
	want := &report.ICMP{Type: 3, Code: 13, Meaning: "communication administratively prohibited", From: netip.MustParseAddr("198.18.0.1")}
	if c.Outcome != report.Rejected || c.ICMP == nil || *c.ICMP != *want {
		t.Errorf("got outcome %q icmp %+v, want rejected %+v", c.Outcome, c.ICMP, want)
	}
	// An ICMP error quoting another sequence number is not this attempt's.
	icmp.Quoted.Seq = 999
	r = run(Config{LocalAny: true}, seg(0, app, 40000, vendor, 80, syn, 100, 0, ""), icmp)
	if got := r.Connections[0].Outcome; got != report.Pending {
		t.Errorf("mismatched quote: outcome %q, want pending", got)
	}
}

func TestWindowUnionAndHeadline(t *testing.T) {
	r := run(Config{LocalAny: true},
		seg(0, router, 50000, app, 8080, syn, 1, 0, ""),
		seg(0.1, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(0.2, app, 40001, vendor, 443, syn, 200, 0, ""),
		seg(1.1, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(1.2, app, 40001, vendor, 443, syn, 200, 0, ""),
		seg(3.2, app, 8080, router, 50000, ackf|event.TCPPsh, 1, 1, "HTTP/1.1 200 OK\r\n"),
		seg(4, router, 50000, app, 8080, ackf|event.TCPFin, 1, 1, ""),
	)
	// The two vendor calls overlap from 0.1 s and 0.2 s until the app
	// answers the login at 3.2 s: 3.1 s blocked, counted once.
	if got, want := r.Window.DurationMS, 4000.0; got != want {
		t.Errorf("window %v ms, want %v", got, want)
	}
	if got, want := r.Window.BlockedMS, 3100.0; got != want {
		t.Errorf("blocked %v ms, want %v", got, want)
	}
	want := "the 4.0 s window was blocked 3.1 s (78%) by 2 unanswered calls to 198.51.100.10:80 (2 SYNs, ~3.1 s) and :443 (2 SYNs, ~3.0 s)"
	if r.Headline != want {
		t.Errorf("headline\n got %q\nwant %q", r.Headline, want)
	}
}

// TestWindowTo: a call that started inside the window keeps the outcome the
// capture shows after --to (here an answer 1 s past it), its blocked time
// counts only up to --to, and a call that starts after --to is not listed.
func TestWindowTo(t *testing.T) {
	r := run(Config{LocalAny: true, ToOffset: 2 * time.Second},
		seg(0, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(2.5, app, 40001, vendor, 81, syn, 500, 0, ""),
		seg(3, vendor, 80, app, 40000, synack, 1, 101, ""),
		seg(3.001, app, 40000, vendor, 80, ackf, 101, 2, ""),
	)
	got := summarize(r)
	want := []connSummary{{"198.51.100.10:80", "established", 2, 2000, false, "answer"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if r.Stats.OutsideWindow != 1 {
		t.Errorf("outside_window = %d, want 1 (the call started after --to)", r.Stats.OutsideWindow)
	}
	if r.Window.DurationMS != 2000 || r.Window.BlockedMS != 2000 {
		t.Errorf("window %v ms blocked %v ms, want 2000 and 2000", r.Window.DurationMS, r.Window.BlockedMS)
	}
}

// TestWindowPending: a call still unanswered when the capture ends is
// pending, however the window is set; one that started before --from is
// not listed.
func TestWindowPending(t *testing.T) {
	r := run(Config{LocalAny: true, FromOffset: 500 * time.Millisecond, ToOffset: 2 * time.Second},
		seg(0, app, 39999, vendor, 79, syn, 50, 0, ""),
		seg(1, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(2, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(2.5, router, 1, app, 2, ackf, 1, 1, ""),
	)
	got := summarize(r)
	want := []connSummary{{"198.51.100.10:80", "pending", 2, 1000, false, "window-end"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if r.Stats.OutsideWindow != 1 {
		t.Errorf("outside_window = %d, want 1 (the call that started before --from)", r.Stats.OutsideWindow)
	}
}

func TestLocalInference(t *testing.T) {
	// The app accepts the login and calls the vendor: it is the local host,
	// and the admin's connection to it is inbound.
	r := run(Config{},
		seg(0, router, 50000, app, 8080, syn, 1, 0, ""),
		seg(0.001, app, 8080, router, 50000, synack, 2, 2, ""),
		seg(0.002, router, 50000, app, 8080, ackf, 2, 3, ""),
		seg(0.01, app, 40000, vendor, 80, syn, 100, 0, ""),
		seg(0.02, vendor, 80, app, 40000, synack, 7, 101, ""),
		seg(0.03, app, 40000, vendor, 80, ackf, 101, 8, ""),
	)
	if r.Local.Basis != "inferred-servers" || !cmp.Equal(r.Local.Addresses, []string{"198.18.0.2"}) {
		t.Errorf("local = %+v, want the app's address inferred", r.Local)
	}
	if len(r.Connections) != 1 || r.Connections[0].DstPort != 80 || r.Stats.InboundAttempts != 1 {
		t.Errorf("connections %+v inbound %d, want only the vendor call and 1 inbound", summarize(r), r.Stats.InboundAttempts)
	}
}

func TestFlowTableIsBounded(t *testing.T) {
	a := New(Config{LocalAny: true, MaxFlows: 100, MaxRecords: 50})
	for i := 0; i < 10000; i++ {
		a.Packet(seg(float64(i)*0.0001, app, uint16(1024+i%60000), vendor, 443, syn, uint32(i), 0, ""))
		if len(a.flows) > 100 {
			t.Fatalf("flow table grew to %d, bound is 100", len(a.flows))
		}
	}
	r := a.Finish()
	if r.Stats.FlowsEvicted == 0 {
		t.Errorf("no evictions counted for 10000 concurrent flows in a table of 100")
	}
}

// TestKernelEvents: the eBPF backend's socket events give exact outcomes.
func TestKernelEvents(t *testing.T) {
	src := netip.AddrPortFrom(app, 40000)
	dst := netip.AddrPortFrom(vendor, 80)
	proc := &event.Process{PID: 42, Comm: "php-fpm"}
	a := New(Config{LocalAny: true})
	for _, e := range []event.Sock{
		{Time: at(0), Kind: event.SockConnect, Cookie: 1, Src: src, Dst: dst, Proc: proc},
		{Time: at(1), Kind: event.SockRetransmit, Cookie: 1},
		{Time: at(2), Kind: event.SockRetransmit, Cookie: 1},
		{Time: at(3), Kind: event.SockClose, Cookie: 1},
		{Time: at(4), Kind: event.SockConnect, Cookie: 2, Src: netip.AddrPortFrom(app, 40001), Dst: netip.AddrPortFrom(vendor, 443), Proc: proc},
		{Time: at(4.001), Kind: event.SockError, Cookie: 2, Errno: 111},
		{Time: at(4.001), Kind: event.SockClose, Cookie: 2},
		{Time: at(5), Kind: event.SockError, Cookie: 3, Dst: netip.AddrPortFrom(vendor, 8443), Errno: 13, Proc: proc},
	} {
		a.Sock(&e)
	}
	got := summarize(a.Finish())
	want := []connSummary{
		{"198.51.100.10:80", "timeout", 3, 3000, false, "socket-closed"},
		{"198.51.100.10:443", "refused", 1, 1, false, "kernel"},
		{"198.51.100.10:8443", "rejected", 0, 0, false, "kernel"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestKernelSocketRejectedByICMPPacket: in watch mode the ICMP error is a
// captured packet while the kernel keeps it as a soft error; the attempt is
// rejected, and blocked until the socket closed.
func TestKernelSocketRejectedByICMPPacket(t *testing.T) {
	src := netip.AddrPortFrom(app, 40000)
	dst := netip.AddrPortFrom(vendor, 443)
	a := New(Config{LocalAny: true})
	a.Sock(&event.Sock{Time: at(0), Kind: event.SockConnect, Cookie: 9, Src: src, Dst: dst})
	a.Packet(&event.Packet{Time: at(0.001), Src: router, Dst: app, Proto: event.ProtoICMP, ICMPType: 3, ICMPCode: 13,
		Quoted: event.Quoted{Valid: true, Proto: event.ProtoTCP, Src: app, Dst: vendor, SrcPort: 40000, DstPort: 443, Seq: 123456, HasSeq: true}})
	a.Sock(&event.Sock{Time: at(1), Kind: event.SockRetransmit, Cookie: 9})
	a.Sock(&event.Sock{Time: at(1.02), Kind: event.SockClose, Cookie: 9})
	got := summarize(a.Finish())
	want := []connSummary{{"198.51.100.10:443", "rejected", 2, 1020, false, "answer"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
