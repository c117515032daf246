package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

var (
	client   = netip.MustParseAddrPort("198.18.0.2:40000")
	resolver = netip.MustParseAddrPort("198.18.0.1:53")
	vendor   = netip.MustParseAddrPort("198.51.100.7:443")
	app      = &event.Process{PID: 42, Comm: "shopapp"}
)

// fakeSource emits what its script says, when it says: a live source
// whose observations reach the pipeline late or out of order, as the
// kernel's buffers deliver them.
type fakeSource struct {
	script func(ctx context.Context, emit func(event.Observation))
	stats  event.Stats
}

func (f *fakeSource) Run(ctx context.Context, sink capture.Sink) error {
	f.script(ctx, sink.Observe)
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeSource) Stats() event.Stats { return f.stats }

// recordingTee remembers what it was given, in order.
type recordingTee struct {
	mu    sync.Mutex
	times []int64
	info  comment.WatchInfo
}

func (r *recordingTee) add(t int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, t)
	return nil
}
func (r *recordingTee) WriteFrame(t int64, _ []byte, _ int, _ *event.Process) error { return r.add(t) }
func (r *recordingTee) WriteSock(s *event.Sock) error                               { return r.add(s.Time) }
func (r *recordingTee) WriteDNS(d *event.DNS) error                                 { return r.add(d.Time) }
func (r *recordingTee) WriteBlocked(b *event.Blocked) error                         { return r.add(b.Time) }
func (r *recordingTee) WriteActivity(a *event.Activity) error                       { return r.add(a.Time) }
func (r *recordingTee) Close(w comment.WatchInfo) error                             { r.info = w; return nil }

// dnsAnswer is a response for name A with addrs.
func dnsAnswer(name string, addrs ...netip.Addr) []byte {
	b := []byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, byte(len(addrs)), 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0, 0, 1, 0, 1)
	for _, a := range addrs {
		a4 := a.As4()
		b = append(b, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		b = append(b, a4[:]...)
	}
	return b
}

// dnsQuery is the query dnsAnswer answers.
func dnsQuery(name string) []byte {
	a := dnsAnswer(name)
	a[2], a[3] = 1, 0
	return a
}

// udpFrame is a Linux cooked v2 frame of a UDP datagram, decoded as a live
// capture would hand it over.
func udpFrame(t *testing.T, at int64, src, dst netip.AddrPort, out bool, payload []byte) *event.Packet {
	b := binary.BigEndian.AppendUint16(nil, 0x0800)
	b = append(b, 0, 0, 0, 0, 0, 1, 0xff, 0xfe)
	pt := byte(0)
	if out {
		pt = 4
	}
	b = append(b, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, event.ProtoUDP, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	ip = append(append(ip, s4[:]...), d4[:]...)
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0)
	b = append(b, payload...)
	p := &event.Packet{Time: at, WireLen: len(b)}
	if err := decode.NewDecoder(decode.Options{}).Decode(decode.LinkLinuxSLL2, b, p); err != nil {
		t.Fatalf("decode test frame: %v", err)
	}
	p.Frame = b
	return p
}

// story is what the fake sources of the tests emit: a lookup captured as
// packets and delivered late, a connect to its answer from the kernel,
// a refused datagram, and one socket event after the window.
type story struct {
	t0, to int64
}

func (s *story) sources(t *testing.T, window chan struct{}) []capture.Source {
	kernel := &fakeSource{stats: event.Stats{Lost: 2}, script: func(ctx context.Context, emit func(event.Observation)) {
		// The resolver socket first, then the call.
		emit(&event.Sock{Time: s.t0 + 1e6, Kind: event.SockUDPConnect, Proto: event.ProtoUDP, Src: client, Dst: resolver, Proc: app})
		conn := netip.MustParseAddrPort("198.18.0.2:41000")
		emit(&event.Sock{Time: s.t0 + 20e6, Kind: event.SockConnect, Cookie: 7, Proto: event.ProtoTCP, Src: conn, Dst: vendor, Proc: app})
		emit(&event.Sock{Time: s.t0 + 25e6, Kind: event.SockEstablished, Cookie: 7, Proto: event.ProtoTCP, Src: conn, Dst: vendor, Proc: app})
		emit(&event.Sock{Time: s.t0 + 30e6, Kind: event.SockClose, Cookie: 7, Proto: event.ProtoTCP, Src: conn, Dst: vendor, Proc: app})
		<-window
		// After the edge: written, not analyzed.
		late := netip.MustParseAddrPort("198.18.0.2:41001")
		emit(&event.Sock{Time: s.to + 50e6, Kind: event.SockConnect, Cookie: 8, Proto: event.ProtoTCP, Src: late, Dst: vendor, Proc: app})
	}}
	packets := &fakeSource{stats: event.Stats{Packets: 2, Bytes: 200}, script: func(ctx context.Context, emit func(event.Observation)) {
		// The lookup reaches the pipeline after the connect it names.
		time.Sleep(30 * time.Millisecond)
		emit(udpFrame(t, s.t0+5e6, client, resolver, true, dnsQuery("api.vendor.test")))
		emit(udpFrame(t, s.t0+10e6, resolver, client, false, dnsAnswer("api.vendor.test", vendor.Addr())))
	}}
	blocker := &fakeSource{script: func(ctx context.Context, emit func(event.Observation)) {
		<-window
		// Read during the drain, timestamped inside the window.
		emit(&event.DNS{Time: s.t0 + 40e6, Client: client, Server: resolver, Msg: dnsQuery("ntp.vendor.test")})
		emit(&event.DNS{Time: s.t0 + 41e6, Client: client, Server: resolver, Response: true,
			Msg: dnsAnswer("ntp.vendor.test", netip.MustParseAddr("203.0.113.5"))})
		emit(&event.Blocked{Time: s.t0 + 45e6, Proto: event.ProtoUDP, Dst: netip.MustParseAddrPort("203.0.113.5:123"), Proc: app})
	}}
	return []capture.Source{kernel, packets, blocker}
}

// runStory runs the story live and returns the result; the window closes
// 150 ms after the start.
func runStory(t *testing.T, tee Tee, stream ...Stream) (*Result, *story) {
	t.Helper()
	s := &story{t0: time.Now().UnixNano()}
	window := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond)
		s.to = time.Now().UnixNano()
		close(window)
	}()
	cfg := Config{
		Analyze: analyze.Config{LocalAny: true, From: s.t0}, Live: true, EndAtClose: true,
		Sources: s.sources(t, window), Window: window, Tee: tee, Source: "test", Backend: "fake",
		now: func() int64 {
			select {
			case <-window:
				// The clock of the edge, so the test knows it.
				return s.to
			default:
				return time.Now().UnixNano()
			}
		},
	}
	if len(stream) > 0 {
		cfg.Stream, cfg.Refusals = stream[0], true
	}
	return Run(context.Background(), cfg), s
}

func TestLive(t *testing.T) {
	tee := &recordingTee{}
	res, s := runStory(t, tee)
	r := res.Report
	if res.SourceErr != nil || res.TeeErr != nil {
		t.Fatalf("errors: %v, %v", res.SourceErr, res.TeeErr)
	}
	// Order: the tee, like the analyzer, saw everything by time, although
	// the lookup came after the connect.
	for i := 1; i < len(tee.times); i++ {
		if tee.times[i] < tee.times[i-1] {
			t.Errorf("tee got observation %d at %d after one at %d", i, tee.times[i], tee.times[i-1])
		}
	}
	if len(tee.times) != 9 { // 3 socket events + 2 frames + 2 DNS + 1 refusal + 1 late
		t.Errorf("tee got %d observations, want 9", len(tee.times))
	}
	if len(r.Connections) != 2 {
		t.Fatalf("connections: %+v", r.Connections)
	}
	c := r.Connections[0]
	if c.Host != "api.vendor.test" || c.NameSource != report.SourceDNS || c.Outcome != report.Established || c.PID == nil || *c.PID != 42 {
		t.Errorf("the connect is not named by the lookup captured before it: %+v", c)
	}
	// The refused datagram, read during the drain, named by the proxy.
	b := r.Connections[1]
	if b.Host != "ntp.vendor.test" || b.Outcome != report.Rejected || b.EndBasis != report.BasisBlockedConnect || b.Proto != "udp" {
		t.Errorf("refused call: %+v", b)
	}
	// Lookups carry the process of the resolver socket.
	named := 0
	for _, l := range r.Lookups {
		if l.PID != nil && *l.PID == 42 {
			named++
		}
	}
	if len(r.Lookups) != 2 || named != 2 {
		t.Errorf("lookups (want 2, both of pid 42): %+v", r.Lookups)
	}
	// The window ends where it closed; the late event is outside it.
	if got := r.Window.End.UnixNano(); got != s.to {
		t.Errorf("window end %d, want %d", got, s.to)
	}
	if r.Stats.OutsideWindow != 1 || r.Stats.EventsLost != 2 || r.Stats.Packets != 2 {
		t.Errorf("stats %+v: want 1 outside the window, 2 lost, 2 packets", r.Stats)
	}
	if !reflect.DeepEqual(tee.info, comment.WatchInfo{From: s.t0, To: s.to, Lost: 2, LocalAny: true}) {
		t.Errorf("tee closed with %+v", tee.info)
	}
	if len(r.Hints) == 0 || r.Hints[len(r.Hints)-1].Kind != "blocked" {
		t.Errorf("hints %+v: want the blocked hint", r.Hints)
	}
}

// TestTeeRoundTrip: what a live run writes replays to the same report.
func TestTeeRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.pcapng")
	w, err := pcapng.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	live, _ := runStory(t, w)
	if live.TeeErr != nil {
		t.Fatal(live.TeeErr)
	}
	rd, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	wi, ok := rd.Watch()
	if !ok {
		t.Fatal("no window in the file")
	}
	replayed := Run(context.Background(), Config{
		Analyze: analyze.Config{From: wi.From, To: wi.To, LocalAny: wi.LocalAny},
		Sources: []capture.Source{rd}, Source: "test", Backend: "fake",
	})
	if replayed.SourceErr != nil {
		t.Fatal(replayed.SourceErr)
	}
	a, b := asJSON(t, live.Report), asJSON(t, replayed.Report)
	// Packet counts come from the fake source live and from the file on replay.
	for _, m := range []map[string]any{a, b} {
		delete(m["stats"].(map[string]any), "bytes")
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("replay of the tee differs from the live report (-live +replay):\n%s", diff)
	}
}

func asJSON(t *testing.T, r *report.Report) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var addrs = cmp.Options{cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

type recordingStream struct {
	conns []report.Connection
	lks   []report.Lookup
}

func (r *recordingStream) Connection(c *report.Connection) error {
	r.conns = append(r.conns, *c)
	return nil
}

func (r *recordingStream) Lookup(l *report.Lookup) error {
	r.lks = append(r.lks, *l)
	return nil
}

// TestStream: each call is handed over as it settles, with what the final
// report gives it (the blocker's reason included); together they are the
// report's calls.
func TestStream(t *testing.T) {
	rec := &recordingStream{}
	res, _ := runStory(t, nil, rec)
	if res.StreamErr != nil {
		t.Fatal(res.StreamErr)
	}
	byStart := func(a, b report.Connection) int { return a.Start.Compare(b.Start) }
	slices.SortStableFunc(rec.conns, byStart)
	if diff := cmp.Diff(res.Report.Connections, rec.conns, addrs); diff != "" {
		t.Errorf("streamed connections (-report +stream):\n%s", diff)
	}
	slices.SortStableFunc(rec.lks, func(a, b report.Lookup) int { return a.Start.Compare(b.Start) })
	if diff := cmp.Diff(res.Report.Lookups, rec.lks, addrs); diff != "" {
		t.Errorf("streamed lookups (-report +stream):\n%s", diff)
	}
}

// TestProgress: a live run hands the analyzer's counters to Progress while
// the window is open (the agent's health metrics), on the pipeline's
// goroutine, and not after Run has returned.
func TestProgress(t *testing.T) {
	s := &story{t0: time.Now().UnixNano()}
	window := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond)
		s.to = time.Now().UnixNano()
		close(window)
	}()
	calls := 0
	returned := false
	Run(context.Background(), Config{
		Analyze: analyze.Config{LocalAny: true, From: s.t0}, Live: true, EndAtClose: true,
		Sources: s.sources(t, window), Window: window,
		Progress: func(report.Stats) {
			if returned {
				t.Error("Progress after Run returned")
			}
			calls++
		},
	})
	returned = true
	if calls < 2 {
		t.Errorf("Progress called %d times over a 350 ms live run, want one per %v", calls, ReorderHold/2)
	}
}
