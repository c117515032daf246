package cli

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// sharedAddr answers for both names of the concurrent test, as a CDN (or
// the stand-in internet of issue 8) does; the app's firewall drops HTTPS
// to it, so every call waits out curl's -m 2.
const sharedAddr = "198.18.5.5"

// udpFrame is a Linux cooked v2 frame of an IPv4 UDP datagram (UDP
// checksum 0: none, as IPv4 allows).
func udpFrame(out bool, src, dst netip.AddrPort, payload []byte) []byte {
	pktType := byte(0) // to us
	if out {
		pktType = 4
	}
	f := []byte{0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, pktType, 6, 2, 0, 0, 0, 0, 1, 0, 0}
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	return append(append(append(f, ip...), udp...), payload...)
}

func dnsMsg(t *testing.T, id uint16, name string, answer netip.Addr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: answer.IsValid(), RecursionDesired: true})
	b.StartQuestions()
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	if err := b.Question(q); err != nil {
		t.Fatal(err)
	}
	if answer.IsValid() {
		b.StartAnswers()
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: answer.As4()}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReplayNamesFollowTheAsker: a pcapng with process comments (as
// egress watch writes it) of 16 processes looking up two names that share
// one address, all answers before any connect and the connects in another
// order: replay names each of the 16 calls by its own process's lookup.
func TestReplayNamesFollowTheAsker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "names.pcapng")
	w, err := pcapng.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	app, resolver := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddrPort("198.18.0.1:53")
	shared := netip.MustParseAddr(sharedAddr)
	names := []string{"telemetry.nextjs.org", "registry.npmjs.org"}
	base := int64(1_764_570_000_000_000_000)
	procs := make([]*event.Process, 16)
	for i := range procs {
		procs[i] = &event.Process{PID: 5000 + i, Comm: names[i%2][:3] + "-curl", Parent: 4999}
	}
	tm := base
	for i := range 16 { // queries, then answers in reverse order
		client := netip.AddrPortFrom(app, uint16(40000+i))
		f := udpFrame(true, client, resolver, dnsMsg(t, uint16(i+1), names[i%2], netip.Addr{}))
		if err := w.WriteFrame(tm, f, len(f), procs[i]); err != nil {
			t.Fatal(err)
		}
		tm += 1e6
	}
	for i := 15; i >= 0; i-- {
		client := netip.AddrPortFrom(app, uint16(40000+i))
		f := udpFrame(false, resolver, client, dnsMsg(t, uint16(i+1), names[i%2], shared))
		if err := w.WriteFrame(tm, f, len(f), nil); err != nil {
			t.Fatal(err)
		}
		tm += 1e6
	}
	order := []int{3, 12, 0, 7, 9, 14, 1, 5, 11, 2, 15, 8, 6, 13, 4, 10}
	for k, i := range order {
		s := event.Sock{Time: tm, Kind: event.SockConnect, Cookie: uint64(100 + i), Proto: event.ProtoTCP,
			Src: netip.AddrPortFrom(app, uint16(50000+k)), Dst: netip.AddrPortFrom(shared, 443), Proc: procs[i]}
		if err := w.WriteSock(&s); err != nil {
			t.Fatal(err)
		}
		tm += 1e5
	}
	tm += 2e9
	for k, i := range order {
		s := event.Sock{Time: tm, Kind: event.SockClose, Cookie: uint64(100 + i), Proto: event.ProtoTCP,
			Src: netip.AddrPortFrom(app, uint16(50000+k)), Dst: netip.AddrPortFrom(shared, 443), Proc: procs[i]}
		if err := w.WriteSock(&s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(comment.WatchInfo{From: base, To: tm + 1e9}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runMain(t, nil, "replay", path, "--format", "json", "--local", "198.18.0.2/32")
	if code != ExitOK {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	right := 0
	for _, c := range r.Connections {
		want := names[(*c.PID-5000)%2]
		if c.Host == want && c.NameSource == report.SourceDNS {
			right++
		} else {
			t.Errorf("%s[%d] named %q (%s), want %q", *c.Comm, *c.PID, c.Host, c.NameSource, want)
		}
	}
	if right != 16 || len(r.Connections) != 16 {
		t.Fatalf("%d of %d calls named by their own lookup, want 16 of 16", right, len(r.Connections))
	}
	if r.Window.LostBasis != report.LostCapture {
		t.Errorf("lost_basis %q: a file without scheduler changes is the capture's estimate", r.Window.LostBasis)
	}
}
