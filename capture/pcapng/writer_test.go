package pcapng

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/event"
)

type sink struct {
	packets []event.Packet
	socks   []event.Sock
	acts    []event.Activity
}

func (s *sink) Packet(p *event.Packet) {
	c := *p
	c.Payload = append([]byte(nil), p.Payload...)
	if p.Proc != nil {
		pr := *p.Proc
		c.Proc = &pr
	}
	s.packets = append(s.packets, c)
}
func (s *sink) Sock(e *event.Sock) { s.socks = append(s.socks, *e) }

func (s *sink) Observe(o event.Observation) {
	switch o := o.(type) {
	case *event.Packet:
		s.Packet(o)
	case *event.Sock:
		s.Sock(o)
	case *event.Activity:
		s.acts = append(s.acts, *o)
	}
}

// dnsQuery is a Linux cooked v2 frame holding a real query for
// updates.vendor.test A from 198.18.0.2:40000 to 198.18.0.1:53, outgoing.
func dnsQuery() []byte {
	q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 'u', 'p', 'd', 'a', 't', 'e', 's', 6, 'v', 'e', 'n', 'd', 'o', 'r', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}
	f := []byte{0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, packetOutgoing, 6, 2, 0, 0, 0, 0, 1, 0, 0}
	ip := []byte{0x45, 0, 0, byte(28 + len(q)), 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1}
	udp := []byte{0x9c, 0x40, 0, 53, 0, byte(8 + len(q)), 0, 0}
	return append(append(append(f, ip...), udp...), q...)
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.pcapng")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	proc := &event.Process{PID: 4242, Comm: "shop app"} // the space must not break the comment
	ap := netip.MustParseAddrPort
	socks := []event.Sock{
		{Time: 1_700_000_000_000_000_100, Kind: event.SockConnect, Cookie: 77, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.11:443"), Proc: proc},
		{Time: 1_700_000_001_000_000_100, Kind: event.SockRetransmit, Cookie: 77, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.11:443")},
		{Time: 1_700_000_001_500_000_000, Kind: event.SockConnect, Cookie: 78, Proto: event.ProtoTCP, Src: ap("[2001:db8:1::2]:41001"), Dst: ap("[2001:db8:2::10]:80"), Proc: proc},
		{Time: 1_700_000_001_500_100_000, Kind: event.SockReset, Cookie: 78, Proto: event.ProtoTCP, Src: ap("[2001:db8:1::2]:41001"), Dst: ap("[2001:db8:2::10]:80")},
		{Time: 1_700_000_001_600_000_000, Kind: event.SockError, Cookie: 78, Proto: event.ProtoTCP, Src: ap("[2001:db8:1::2]:41001"), Dst: ap("[2001:db8:2::10]:80"), Errno: 111},
		{Time: 1_700_000_002_000_000_000, Kind: event.SockEstablished, Cookie: 79, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41002"), Dst: ap("198.51.100.10:80")},
		{Time: 1_700_000_003_000_000_100, Kind: event.SockClose, Cookie: 77, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.11:443"), Proc: proc},
	}
	frame := dnsQuery()
	if err := w.WriteFrame(1_699_999_999_999_999_999, frame, len(frame), proc); err != nil {
		t.Fatal(err)
	}
	for i := range socks {
		if err := w.WriteSock(&socks[i]); err != nil {
			t.Fatal(err)
		}
	}
	info := comment.WatchInfo{From: 1_699_999_999_000_000_000, To: 1_700_000_004_000_000_000, Lost: 3,
		Hints: []comment.Hint{{Kind: "confined", Subject: "shop_app", Text: "capabilities dropped: \"NET_RAW\"\nand more"}}}
	if err := w.Close(info); err != nil {
		t.Fatal(err)
	}

	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got sink
	if err := r.Run(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	want := socks
	for i := range want {
		if want[i].Proc != nil {
			want[i].Proc = &event.Process{PID: 4242, Comm: "shop_app"}
		}
	}
	if diff := cmp.Diff(want, got.socks, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("socket events (-want +got):\n%s", diff)
	}
	if len(got.packets) != 1 {
		t.Fatalf("got %d packets, want the one DNS query", len(got.packets))
	}
	p := got.packets[0]
	if p.Time != 1_699_999_999_999_999_999 || p.Dir != event.DirOut || p.DstPort != 53 || p.Proc == nil || *p.Proc != (event.Process{PID: 4242, Comm: "shop_app"}) {
		t.Errorf("packet = %+v (proc %+v)", p, p.Proc)
	}
	wi, ok := r.Watch()
	if diff := cmp.Diff(info, wi); !ok || diff != "" {
		t.Errorf("Watch() ok %v, (-want +got):\n%s", ok, diff)
	}
	st := r.Stats()
	if st.Packets != 1 || st.Lost != 3 || st.Undecodable != 0 {
		t.Errorf("stats %+v: want 1 packet (socket events are not packets), 3 lost", st)
	}

	// Wireshark's dissectors must accept the synthesized segments: valid
	// checksums, the flags we meant.
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skipf("tshark not installed: %v", err)
	}
	out, err := exec.Command(tshark, "-r", path, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
		"-T", "fields", "-e", "tcp.flags.str", "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "frame.comment", "-E", "separator=|").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1+len(socks) {
		t.Fatalf("tshark read %d records, want %d:\n%s", len(lines), 1+len(socks), out)
	}
	wantFlags := []string{"", "··········S·", "··········S·", "··········S·", "·······A·R··", "·········R··", "·······A··S·", "·········R··"}
	for i, l := range lines {
		f := strings.Split(l, "|")
		if f[0] != wantFlags[i] {
			t.Errorf("record %d flags %q, want %q (%s)", i, f[0], wantFlags[i], l)
		}
		if i > 0 && (f[1] != "1" || (f[2] != "" && f[2] != "1")) {
			t.Errorf("record %d: checksum status tcp=%q ip=%q, want 1 (good): %s", i, f[1], f[2], l)
		}
	}
}

// TestPartialReplays: a writer that is never closed (egress killed with
// SIGKILL) leaves a .partial file that replays the records written up to
// its last flush, not an empty capture.
func TestPartialReplays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "killed.pcapng")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	w.lastFlush = time.Now().Add(-time.Hour) // the next write is due a flush
	for i := range 3 {
		s := event.Sock{Time: 1_700_000_000_000_000_000 + int64(i), Kind: event.SockConnect, Cookie: uint64(10 + i), Proto: event.ProtoTCP,
			Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.11:443")}
		if err := w.WriteSock(&s); err != nil {
			t.Fatal(err)
		}
	}
	// No Close: read what a killed writer left.
	r, err := pcapfile.Open(path + ".partial")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got sink
	if err := r.Run(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	// The first write was due a flush; the other two wait in the buffer
	// for the next one (at most FlushEvery later).
	if len(got.socks) != 1 || got.socks[0].Cookie != 10 {
		t.Errorf("the .partial file replays %d socket events, want the 1 flushed", len(got.socks))
	}
}

// TestRunRecords: what egress run --write adds (relayed DNS messages and
// refused calls) reads back as the same observations, and Wireshark
// accepts the synthesized datagrams and SYNs (valid checksums).
func TestRunRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.pcapng")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	proc := &event.Process{PID: 7, Comm: "curl"}
	q := dnsQuery()[20+28:] // the DNS message of the captured query
	dnss := []event.DNS{
		{Time: 1_700_000_000_000_000_000, Client: ap("127.0.0.1:40000"), Server: ap("198.18.0.1:53"), Msg: q, Proc: proc},
		{Time: 1_700_000_000_100_000_000, Client: ap("[::1]:40001"), Server: ap("[2001:db8::53]:53"), Response: true, TCP: true, Refused: true, Msg: q},
	}
	blocked := []event.Blocked{
		{Time: 1_700_000_000_200_000_000, Proto: event.ProtoTCP, Dst: ap("198.51.100.10:80"), Proc: proc},
		{Time: 1_700_000_000_300_000_000, Proto: event.ProtoUDP, Dst: ap("[2001:db8::1]:123"), Proc: proc},
	}
	for i := range dnss {
		if err := w.WriteDNS(&dnss[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range blocked {
		if err := w.WriteBlocked(&blocked[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(comment.WatchInfo{From: 1, LocalAny: true}); err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var gotDNS []event.DNS
	var gotBlocked []event.Blocked
	err = r.Run(context.Background(), capture.SinkFunc(func(o event.Observation) {
		switch o := o.(type) {
		case *event.DNS:
			c := *o
			c.Msg = append([]byte(nil), o.Msg...)
			gotDNS = append(gotDNS, c)
		case *event.Blocked:
			gotBlocked = append(gotBlocked, *o)
		default:
			t.Errorf("unexpected observation %T", o)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	addrs := cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
	if diff := cmp.Diff(dnss, gotDNS, addrs); diff != "" {
		t.Errorf("DNS messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(blocked, gotBlocked, addrs); diff != "" {
		t.Errorf("refused calls (-want +got):\n%s", diff)
	}
	if wi, ok := r.Watch(); !ok || !wi.LocalAny {
		t.Errorf("Watch() = %+v, %v: want local=any", wi, ok)
	}
	if st := r.Stats(); st.Packets != 0 || st.Undecodable != 0 {
		t.Errorf("stats %+v: these records are not packets seen", st)
	}

	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skipf("tshark not installed: %v", err)
	}
	out, err := exec.Command(tshark, "-r", path, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
		"-T", "fields", "-e", "udp.checksum.status", "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "dns.qry.name", "-E", "separator=|").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	want := []string{"1||1|updates.vendor.test", "1|||updates.vendor.test", "|1|1|", "1|||"}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !cmp.Equal(got, want) {
		t.Errorf("tshark reads %q, want %q", got, want)
	}
}

// TestActivityRoundTrip: scheduler changes written to the file come back
// as the same changes, at the same times, and are not counted as packets.
func TestActivityRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "act.pcapng")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	acts := []event.Activity{{Time: 1_700_000_000_000_000_001, Running: true}, {Time: 1_700_000_000_500_000_000}, {Time: 1_700_000_002_000_000_000, Running: true}}
	for i := range acts {
		if err := w.WriteActivity(&acts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(comment.WatchInfo{From: 1, To: 2}); err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got sink
	if err := r.Run(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(acts, got.acts); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.Packets != 0 || len(got.packets) != 0 {
		t.Errorf("stats %+v, %d packets: scheduler changes are not packets", st, len(got.packets))
	}
}
