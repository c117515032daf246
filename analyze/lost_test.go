package analyze

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

var telemetry = netip.MustParseAddr("198.18.9.9")

// kernelCall is a connect the kernel saw from pid, answered by nothing
// until the app closed it at end (seconds): a dropped call.
func kernelCall(cookie uint64, pid int, start, end float64, port uint16) []*event.Sock {
	src := netip.AddrPortFrom(app, port)
	dst := netip.AddrPortFrom(telemetry, 443)
	p := &event.Process{PID: pid, Comm: "app"}
	return []*event.Sock{
		{Time: at(start), Kind: event.SockConnect, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst, Proc: p},
		{Time: at(end), Kind: event.SockClose, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst, Proc: p},
	}
}

func near(got, want float64) bool { return math.Abs(got-want) < 0.5 }

// TestLostTime: with the scheduler's view, a failed call costs only the
// time in which no watched thread ran; a call that succeeded costs nothing.
func TestLostTime(t *testing.T) {
	type act struct {
		t       float64
		running bool
	}
	tests := []struct {
		name       string
		socks      []*event.Sock
		acts       []act
		wantWindow float64   // ms
		wantCalls  []float64 // ms, in start order
		headline   string    // a part of it
	}{
		{
			name:  "blocking client loses its whole wait",
			socks: kernelCall(1, 10, 1, 6, 50001),
			// runs, calls at 1 s and sleeps in connect() until 6 s.
			acts:       []act{{0, true}, {1, false}, {6, true}, {7, false}},
			wantWindow: 5000, wantCalls: []float64{5000},
			headline: "the 7.0 s window lost 5.0 s (71%) waiting on 1 unanswered call to 198.18.9.9:443",
		},
		{
			name:  "background call loses only the wait at the end",
			socks: kernelCall(1, 10, 1, 6, 50001),
			// busy from 0 to 5.5 s while the call runs, then waits.
			acts:       []act{{0, true}, {5.5, false}, {6, true}, {7, false}},
			wantWindow: 500, wantCalls: []float64{500},
			headline: "lost 500 ms (7%) waiting on",
		},
		{
			name:  "a call while the app works costs nothing",
			socks: kernelCall(1, 10, 1, 3, 50001),
			acts:  []act{{0, true}, {6.5, false}},
			// idle only after the call ended
			wantWindow: 0, wantCalls: []float64{0},
			headline: "lost nothing to failed calls (blocked 2.0 s); failed without cost: 1 unanswered call to 198.18.9.9:443",
		},
		{
			name:       "parallel calls count once",
			socks:      append(kernelCall(1, 10, 1, 6, 50001), kernelCall(2, 11, 2, 6, 50002)...),
			acts:       []act{{0, true}, {1.5, false}, {6, true}, {7, false}},
			wantWindow: 4500, wantCalls: []float64{4500, 4000},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{LocalAny: true, From: at(0), To: at(7)})
			for _, x := range tc.acts {
				a.Activity(&event.Activity{Time: at(x.t), Running: x.running})
			}
			for _, s := range tc.socks {
				a.Sock(s)
			}
			a.Packet(&event.Packet{Time: at(7)})
			r := a.Finish()
			if r.Window.LostBasis != report.LostScheduler || !near(r.Window.LostMS, tc.wantWindow) {
				t.Errorf("window lost %v (%s), want %v (scheduler)", r.Window.LostMS, r.Window.LostBasis, tc.wantWindow)
			}
			if len(r.Connections) != len(tc.wantCalls) {
				t.Fatalf("%d connections, want %d", len(r.Connections), len(tc.wantCalls))
			}
			for i, c := range r.Connections {
				if !near(c.LostMS, tc.wantCalls[i]) {
					t.Errorf("call %d lost %v, want %v", i, c.LostMS, tc.wantCalls[i])
				}
			}
			if !strings.Contains(r.Headline, tc.headline) {
				t.Errorf("headline %q\nwant it to contain %q", r.Headline, tc.headline)
			}
		})
	}
}

// TestLostTimeFromCapture: without a scheduler view, a failed call's lost
// time ends at its host's next own action (an upper bound), and the
// headline keeps its blocked wording.
func TestLostTimeFromCapture(t *testing.T) {
	r := run(Config{LocalAny: true},
		seg(0, app, 50000, vendor, 443, syn, 100, 0, ""),
		seg(1, app, 50000, vendor, 443, syn, 100, 0, ""),
		dnsPacket(t, 1.5, 7, "other.example", netip.Addr{}, false), // the host goes on at 1.5 s
		dnsPacket(t, 1.6, 7, "other.example", router, true),
		seg(3, app, 50000, vendor, 443, syn, 100, 0, ""),
		seg(9, app, 50001, router, 80, syn, 200, 0, ""),
	)
	if r.Window.LostBasis != report.LostCapture {
		t.Fatalf("basis %q, want capture", r.Window.LostBasis)
	}
	var c *report.Connection
	for i := range r.Connections {
		if r.Connections[i].DstPort == 443 {
			c = &r.Connections[i]
		}
	}
	if c == nil || !c.Outcome.Failed() || !near(c.LostMS, 1500) || c.BlockedMS <= c.LostMS {
		t.Fatalf("call %+v: want a failed call that lost 1500 ms of a longer wait", c)
	}
	if !strings.Contains(r.Headline, "was blocked") {
		t.Errorf("headline %q: want the blocked wording", r.Headline)
	}
}

func TestActivityLogBounded(t *testing.T) {
	a := New(Config{LocalAny: true})
	for i := range maxActivity + 10 {
		a.Activity(&event.Activity{Time: at(float64(i) * 0.0001), Running: i%2 == 0})
	}
	if len(a.act.edges) > maxActivity || a.act.coarsened == 0 {
		t.Fatalf("%d changes kept, coarsened %d", len(a.act.edges), a.act.coarsened)
	}
	if a.stats.ActivityChanges != maxActivity+10 {
		t.Fatalf("counted %d changes", a.stats.ActivityChanges)
	}
}

// TestActivityHostileTimes: changes at absurd times (a hostile file) are
// coarsened without overflow or an endless loop, and stay bounded.
func TestActivityHostileTimes(t *testing.T) {
	a := New(Config{LocalAny: true})
	for i := range maxActivity + 5 {
		tm := int64(i) * (math.MaxInt64 / (maxActivity + 10))
		if i%3 == 0 {
			tm = math.MinInt64 + int64(i)
		}
		a.Activity(&event.Activity{Time: tm, Running: i%2 == 0})
	}
	if len(a.act.edges) > maxActivity {
		t.Fatalf("%d changes kept", len(a.act.edges))
	}
	a.Packet(&event.Packet{Time: at(1)})
	r := a.Finish()
	if r.Window.LostBasis != report.LostScheduler || r.Window.LostMS < 0 {
		t.Fatalf("window %+v", r.Window)
	}
}

// TestLostTimeAfterSqueeze: when failures need the room successes hold
// (fold.go's squeeze), records move; their lost time moves with them.
func TestLostTimeAfterSqueeze(t *testing.T) {
	a := New(Config{LocalAny: true, MaxRecords: 4, MaxFoldKeys: 2, From: at(0), To: at(60)})
	a.Activity(&event.Activity{Time: at(0), Running: false}) // the app only waits
	cookie := uint64(1)
	// Successes to distinct destinations fill the records.
	for i := range 8 {
		src := netip.AddrPortFrom(app, uint16(40000+i))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 20, byte(i)}), 443)
		a.Sock(&event.Sock{Time: at(float64(i)), Kind: event.SockConnect, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst})
		a.Sock(&event.Sock{Time: at(float64(i) + 0.1), Kind: event.SockEstablished, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst})
		a.Sock(&event.Sock{Time: at(float64(i) + 0.2), Kind: event.SockClose, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst})
		cookie++
	}
	// Then failures (2 s each) to more distinct destinations.
	for i := range 8 {
		src := netip.AddrPortFrom(app, uint16(41000+i))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 21, byte(i)}), 443)
		start := 10 + 3*float64(i)
		a.Sock(&event.Sock{Time: at(start), Kind: event.SockConnect, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst})
		a.Sock(&event.Sock{Time: at(start + 2), Kind: event.SockClose, Cookie: cookie, Proto: event.ProtoTCP, Src: src, Dst: dst})
		cookie++
	}
	a.Packet(&event.Packet{Time: at(60)})
	r := a.Finish()
	if r.Stats.RecordsDropped == 0 {
		t.Fatalf("no squeeze happened (stats %+v): the test needs one", r.Stats)
	}
	failedRecords := 0
	for _, c := range r.Connections {
		switch {
		case c.Outcome == report.Established && c.LostMS != 0:
			t.Errorf("a success lost %v ms", c.LostMS)
		case c.Outcome == report.Timeout && c.Count == 1:
			failedRecords++
			if !near(c.LostMS, 2000) {
				t.Errorf("failed call to %s lost %v ms, want 2000", c.DstIP, c.LostMS)
			}
		}
	}
	if failedRecords == 0 {
		t.Fatalf("no single failed record kept: %+v", r.Connections)
	}
}

// TestIdleIn: the lost time a record gets as it settles (binary search
// into the log) equals the overlap Finish computes from idle(), for spans
// before, across and after the changes, on a log that arrived out of order.
func TestIdleIn(t *testing.T) {
	var l activityLog
	a := &Analyzer{}
	for _, e := range []event.Activity{{Time: 100, Running: true}, {Time: 300}, {Time: 200}, {Time: 250, Running: true},
		{Time: 400, Running: true}, {Time: 400}, {Time: 500, Running: true}, {Time: 700}} {
		a.act = l
		a.Activity(&e)
		l = a.act
	}
	for from := int64(0); from <= 800; from += 25 {
		for to := from; to <= 900; to += 25 {
			want := overlap([]interval{{from, to}}, l.idle(from, to))
			if got := l.idleIn(from, to); got != want {
				t.Errorf("idleIn(%d, %d) = %d, want %d", from, to, got, want)
			}
		}
	}
}
