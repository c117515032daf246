package decode

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/egress-dev/egress/event"
	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// build serializes layers with gopacket, an implementation independent of
// the decoder under test.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serializing: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var (
	mac1 = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: t}
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func synTo(sp, dp uint16, seq uint32) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, SYN: true, Window: 1024, DataOffset: 5}
}

func TestDecodeBuilt(t *testing.T) {
	innerSYN := event.Packet{Src: a("198.51.100.1"), Dst: a("203.0.113.9"), Proto: 6, SrcPort: 40000, DstPort: 443, Flags: event.TCPSyn, Seq: 77}
	tests := []struct {
		name  string
		link  LinkType
		frame func(t testing.TB) []byte
		want  result
	}{
		{"gre with key, ipv4 in ipv4", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeIPv4), ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolGRE),
				&layers.GRE{KeyPresent: true, Key: 7, Protocol: layers.EthernetTypeIPv4},
				ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
		}, result{P: innerSYN}},
		{"gre ethernet bridging, vlan, ipv6 udp", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeIPv4), ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolGRE),
				&layers.GRE{Protocol: layers.EthernetTypeTransparentEthernetBridging},
				eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 5, Type: layers.EthernetTypeIPv6},
				ip6("2001:db8::1", "2001:db8::53", layers.IPProtocolUDP),
				&layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload("hello"))
		}, result{P: event.Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::53"), Proto: 17, SrcPort: 5353, DstPort: 53}, PayloadLen: 5}},
		{"vxlan", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeIPv4), ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolUDP),
				&layers.UDP{SrcPort: 61000, DstPort: 4789}, &layers.VXLAN{ValidIDFlag: true, VNI: 42},
				eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
		}, result{P: innerSYN}},
		{"vxlan port with garbage keeps the outer udp", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeIPv4), ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolUDP),
				&layers.UDP{SrcPort: 61000, DstPort: 4789}, gopacket.Payload(bytes.Repeat([]byte{0x08}, 40)))
		}, result{P: event.Packet{Src: a("192.0.2.1"), Dst: a("192.0.2.2"), Proto: 17, SrcPort: 61000, DstPort: 4789}, PayloadLen: 40}},
		{"ipv6 in ipv4 (6in4)", LinkRaw, func(t testing.TB) []byte {
			return build(t, ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolIPv6),
				ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolTCP), synTo(1, 2, 3))
		}, result{P: event.Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::2"), Proto: 6, SrcPort: 1, DstPort: 2, Flags: event.TCPSyn, Seq: 3}}},
		{"ipv4 in ipv6", LinkIPv6, func(t testing.TB) []byte {
			return build(t, ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolIPv4),
				ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
		}, result{P: innerSYN}},
		{"ipv6 hop-by-hop and destination options", LinkRaw, func(t testing.TB) []byte {
			ext := []byte{60, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop, next: dest opts, PadN
				6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // dest opts (16 bytes), next: TCP
			return build(t, ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolIPv6HopByHop),
				gopacket.Payload(append(ext, build(t, synTo(1, 2, 3))...)))
		}, result{P: event.Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::2"), Proto: 6, SrcPort: 1, DstPort: 2, Flags: event.TCPSyn, Seq: 3}}},
		{"icmp port unreachable quoting udp", LinkEthernet, func(t testing.TB) []byte {
			quoted := build(t, ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolUDP), &layers.UDP{SrcPort: 3333, DstPort: 53})
			return build(t, eth(layers.EthernetTypeIPv4), ip4("203.0.113.9", "198.51.100.1", layers.IPProtocolICMPv4),
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(quoted))
		}, result{P: event.Packet{Src: a("203.0.113.9"), Dst: a("198.51.100.1"), Proto: 1, ICMPType: 3, ICMPCode: 3,
			Quoted: event.Quoted{Valid: true, Proto: 17, Src: a("198.51.100.1"), Dst: a("203.0.113.9"), SrcPort: 3333, DstPort: 53}}, PayloadLen: 28}},
		{"tcp header cut: addresses and ports kept", LinkEthernet, func(t testing.TB) []byte {
			b := build(t, eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
			return b[:14+20+10]
		}, result{P: event.Packet{Src: a("198.51.100.1"), Dst: a("203.0.113.9"), Proto: 6, SrcPort: 40000, DstPort: 443, Seq: 77}, Err: ErrTruncated}},
		{"ip header cut", LinkEthernet, func(t testing.TB) []byte {
			b := build(t, eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
			return b[:14+12]
		}, result{Err: ErrTruncated}},
		{"payload cut by snap length is fine", LinkEthernet, func(t testing.TB) []byte {
			b := build(t, eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77), gopacket.Payload(make([]byte, 100)))
			return b[:14+20+20+30]
		}, result{P: innerSYN, PayloadLen: 30}},
		{"ethernet padding is not payload", LinkEthernet, func(t testing.TB) []byte {
			b := build(t, eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2}, gopacket.Payload("x"))
			return append(b, make([]byte, 60-len(b))...)
		}, result{P: event.Packet{Src: a("198.51.100.1"), Dst: a("203.0.113.9"), Proto: 17, SrcPort: 1, DstPort: 2}, PayloadLen: 1}},
		{"arp is unsupported", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeARP), gopacket.Payload(make([]byte, 28)))
		}, result{Err: ErrUnsupported}},
		{"unknown link type", LinkType(147), func(t testing.TB) []byte { return make([]byte, 40) }, result{Err: ErrUnsupported}},
		{"bad ip version", LinkRaw, func(t testing.TB) []byte { return make([]byte, 40) }, result{Err: ErrMalformed}},
		{"loop (network order) ipv6", LinkLoop, func(t testing.TB) []byte {
			return append([]byte{0, 0, 0, 24}, build(t, ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolTCP), synTo(1, 2, 3))...)
		}, result{P: event.Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::2"), Proto: 6, SrcPort: 1, DstPort: 2, Flags: event.TCPSyn, Seq: 3}}},
		{"null written big-endian", LinkNull, func(t testing.TB) []byte {
			return append([]byte{0, 0, 0, 2}, build(t, ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))...)
		}, result{P: innerSYN}},
		{"too many nested tunnels", LinkRaw, func(t testing.TB) []byte {
			ls := []gopacket.SerializableLayer{}
			for range maxEncap + 2 {
				ls = append(ls, ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolIPv4))
			}
			ls = append(ls, ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
			return build(t, ls...)
		}, result{P: event.Packet{Src: a("192.0.2.1"), Dst: a("192.0.2.2"), Proto: 4}, Err: ErrMalformed}},
		{"qinq then mpls two labels", LinkEthernet, func(t testing.TB) []byte {
			return build(t, eth(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 1, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 2, Type: layers.EthernetTypeMPLSUnicast},
				&layers.MPLS{Label: 100, TTL: 5}, &layers.MPLS{Label: 200, StackBottom: true, TTL: 5},
				ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77))
		}, result{P: innerSYN}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeResult(NewDecoder(Options{}), tt.link, tt.frame(t), 0)
			if diff := cmp.Diff(tt.want, got, cmpAddr, errCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// fragments splits a UDP datagram into IPv4 fragments of at most size
// payload bytes (a multiple of 8), in order.
func fragments(t testing.TB, id uint16, udpPayload []byte, size int) [][]byte {
	t.Helper()
	dgram := build(t, &layers.UDP{SrcPort: 53, DstPort: 40000}, gopacket.Payload(udpPayload))
	binary.BigEndian.PutUint16(dgram[4:], uint16(len(dgram))) // gopacket needs a network layer to fix it
	var out [][]byte
	for off := 0; off < len(dgram); off += size {
		end := min(off+size, len(dgram))
		h := ip4("203.0.113.53", "198.51.100.1", layers.IPProtocolUDP)
		h.Id = id
		h.FragOffset = uint16(off / 8)
		if end < len(dgram) {
			h.Flags = layers.IPv4MoreFragments
		}
		out = append(out, build(t, h, gopacket.Payload(dgram[off:end])))
	}
	return out
}

func TestReassembly(t *testing.T) {
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	frags := fragments(t, 9, payload, 1200)
	if len(frags) != 3 {
		t.Fatalf("want 3 fragments, got %d", len(frags))
	}
	d := NewDecoder(Options{})
	var p event.Packet
	for i, f := range [][]byte{frags[2], frags[0]} { // out of order
		if err := d.Decode(LinkRaw, f, &p); kindOf(err) != ErrFragment {
			t.Fatalf("fragment %d: got %v, want ErrFragment", i, err)
		}
	}
	if err := d.Decode(LinkRaw, frags[1], &p); err != nil {
		t.Fatalf("last fragment: %v", err)
	}
	if p.SrcPort != 53 || p.DstPort != 40000 || !bytes.Equal(p.Payload, payload) {
		t.Errorf("reassembled: ports %d>%d, payload %d bytes, equal %v", p.SrcPort, p.DstPort, len(p.Payload), bytes.Equal(p.Payload, payload))
	}
	want := Stats{FragmentsHeld: 3, Reassembled: 1}
	if diff := cmp.Diff(want, d.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestReassemblyBounds(t *testing.T) {
	payload := make([]byte, 2000)
	t.Run("count", func(t *testing.T) {
		d := NewDecoder(Options{MaxFragDatagrams: 2})
		var p event.Packet
		for id := range uint16(3) { // three datagrams' first fragments, two slots
			d.Decode(LinkRaw, fragments(t, id, payload, 1200)[0], &p)
		}
		// The first datagram was evicted: its last fragment cannot complete it.
		if err := d.Decode(LinkRaw, fragments(t, 0, payload, 1200)[1], &p); kindOf(err) != ErrFragment {
			t.Errorf("evicted datagram completed: %v", err)
		}
		if err := d.Decode(LinkRaw, fragments(t, 2, payload, 1200)[1], &p); err != nil {
			t.Errorf("held datagram did not complete: %v", err)
		}
		if s := d.Stats(); s.Evicted < 1 || s.Reassembled != 1 {
			t.Errorf("stats: %+v", s)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		d := NewDecoder(Options{MaxFragBytes: 1500})
		var p event.Packet
		d.Decode(LinkRaw, fragments(t, 1, payload, 1200)[0], &p)
		d.Decode(LinkRaw, fragments(t, 2, payload, 1200)[0], &p) // evicts datagram 1
		if s := d.Stats(); s.Evicted != 1 || s.Pending != 1 {
			t.Errorf("stats: %+v", s)
		}
	})
	t.Run("age", func(t *testing.T) {
		d := NewDecoder(Options{FragTimeout: time.Second})
		var p event.Packet
		frags := fragments(t, 1, payload, 1200)
		p.Time = 0
		d.Decode(LinkRaw, frags[0], &p)
		p.Time = int64(2 * time.Second)
		if err := d.Decode(LinkRaw, frags[1], &p); kindOf(err) != ErrFragment {
			t.Errorf("stale datagram completed: %v", err)
		}
		if s := d.Stats(); s.Evicted != 1 {
			t.Errorf("stats: %+v", s)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		d := NewDecoder(Options{MaxFragDatagrams: -1})
		var p event.Packet
		frags := fragments(t, 1, payload, 1200)
		if err := d.Decode(LinkRaw, frags[0], &p); err != nil || p.DstPort != 40000 {
			t.Errorf("first fragment: %v, port %d", err, p.DstPort)
		}
		if err := d.Decode(LinkRaw, frags[1], &p); kindOf(err) != ErrFragment {
			t.Errorf("second fragment: %v", err)
		}
	})
}

func benchFrame(b *testing.B, link LinkType, frame []byte) {
	d := NewDecoder(Options{})
	var p event.Packet
	if err := d.Decode(link, frame, &p); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		d.Decode(link, frame, &p)
	}
}

func BenchmarkDecodeEthernetTCP(b *testing.B) {
	benchFrame(b, LinkEthernet, build(b, eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, ACK: true, PSH: true, Window: 512}, gopacket.Payload(make([]byte, 100))))
}

func BenchmarkDecodeEthernetIPv6UDP(b *testing.B) {
	benchFrame(b, LinkEthernet, build(b, eth(layers.EthernetTypeIPv6), ip6("2001:db8::1", "2001:db8::53", layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(make([]byte, 40))))
}

func BenchmarkDecodeVXLANTCP(b *testing.B) {
	benchFrame(b, LinkEthernet, build(b, eth(layers.EthernetTypeIPv4), ip4("192.0.2.1", "192.0.2.2", layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 61000, DstPort: 4789}, &layers.VXLAN{ValidIDFlag: true, VNI: 42},
		eth(layers.EthernetTypeIPv4), ip4("198.51.100.1", "203.0.113.9", layers.IPProtocolTCP), synTo(40000, 443, 77)))
}

// BenchmarkDecodeCorpus decodes every frame of the public corpus.
func BenchmarkDecodeCorpus(b *testing.B) {
	var frames []frame
	for _, path := range corpusCaptures(b) {
		frames = append(frames, readCapture(b, path)...)
	}
	d := NewDecoder(Options{})
	var p event.Packet
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frames {
			p.Time = f.time
			d.Decode(f.link, f.data, &p)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}

// TestDecodeAllocs checks that decoding allocates nothing per packet, on
// every corpus frame and on the success, error and tunnel paths.
func TestDecodeAllocs(t *testing.T) {
	var frames []frame
	for _, path := range corpusCaptures(t) {
		frames = append(frames, readCapture(t, path)...)
	}
	d := NewDecoder(Options{})
	var p event.Packet
	for _, f := range frames { // warm up: reassembly buffers are made once
		d.Decode(f.link, f.data, &p)
	}
	allocs := testing.AllocsPerRun(5, func() {
		for _, f := range frames {
			p.Time = f.time
			d.Decode(f.link, f.data, &p)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per pass over %d frames, want 0", allocs, len(frames))
	}
}

// TestReassemblyIPv6ExtAfterFragment: the fragmentable part starts with a
// destination options header, which is read only once the datagram is
// whole (offsets count from the fragment header).
func TestReassemblyIPv6ExtAfterFragment(t *testing.T) {
	payload := bytes.Repeat([]byte("dns!"), 500)
	udp := build(t, &layers.UDP{SrcPort: 53, DstPort: 40000}, gopacket.Payload(payload))
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	part := append([]byte{17, 0, 1, 4, 0, 0, 0, 0}, udp...) // dest opts, next: UDP
	frag := func(off int, data []byte, more bool) []byte {
		fo := uint16(off)
		if more {
			fo |= 1
		}
		fh := []byte{60, 0, byte(fo >> 8), byte(fo), 0, 0, 0, 9}
		return build(t, ip6("2001:db8::53", "2001:db8::1", layers.IPProtocolIPv6Fragment), gopacket.Payload(append(fh, data...)))
	}
	d := NewDecoder(Options{})
	var p event.Packet
	if err := d.Decode(LinkRaw, frag(1000, part[1000:], false), &p); kindOf(err) != ErrFragment {
		t.Fatalf("last fragment first: %v", err)
	}
	if err := d.Decode(LinkRaw, frag(0, part[:1000], true), &p); err != nil {
		t.Fatalf("completing fragment: %v", err)
	}
	if p.Proto != event.ProtoUDP || p.SrcPort != 53 || !bytes.Equal(p.Payload, payload) {
		t.Errorf("got proto %d port %d, payload %d bytes (equal %v)", p.Proto, p.SrcPort, len(p.Payload), bytes.Equal(p.Payload, payload))
	}
}
