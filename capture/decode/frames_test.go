package decode

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/google/go-cmp/cmp"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// result is what a test compares: the packet without its payload bytes,
// the payload length, and the error kind.
type result struct {
	P          event.Packet
	PayloadLen int
	Err        error
}

func decodeResult(d *Decoder, link LinkType, data []byte, time int64) result {
	var p event.Packet
	p.Time = time
	err := d.Decode(link, data, &p)
	r := result{P: p, PayloadLen: len(p.Payload), Err: kindOf(err)}
	r.P.Payload = nil
	r.P.Time = 0
	return r
}

func kindOf(err error) error {
	for _, k := range []error{ErrUnsupported, ErrTruncated, ErrMalformed, ErrFragment} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

var errCmp = cmp.Comparer(func(a, b error) bool { return a == b })

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestCorpusFrames checks single frames of the public corpus against
// tshark's decode of them (values copied from `tshark -T fields`).
func TestCorpusFrames(t *testing.T) {
	dir := corpusDir(t)
	syn := event.TCPSyn
	tests := []struct {
		capture string
		frame   int
		want    result
	}{
		{"zeek__vlan-qinqinq.pcap", 1, result{P: event.Packet{Src: a("141.142.228.5"), Dst: a("192.150.187.43"), Proto: 6, SrcPort: 59856, DstPort: 80, Flags: syn, Seq: 4263588410}}},
		{"zeek__mixed-vlan-mpls.pcap", 1, result{P: event.Packet{Src: a("10.1.2.1"), Dst: a("10.34.0.1"), Proto: 6, SrcPort: 11001, DstPort: 23, Flags: syn, Seq: 2553417723}}},
		{"zeek__cisco-fabric-path.pcap", 2, result{P: event.Packet{Src: a("1.1.1.6"), Dst: a("2.2.2.2"), Proto: 17, SrcPort: 57005, DstPort: 48879}}},
		{"tcpdump__tcp-handshake-nano.pcap", 1, result{P: event.Packet{Dir: event.DirOut, Src: a("131.155.215.69"), Dst: a("137.116.81.94"), Proto: 6, SrcPort: 46656, DstPort: 80, Flags: syn, Seq: 797190859}}},
		{"tcpdump__tcp-handshake-nano.pcap", 2, result{P: event.Packet{Dir: event.DirIn, Src: a("137.116.81.94"), Dst: a("131.155.215.69"), Proto: 6, SrcPort: 80, DstPort: 46656, Flags: 0x12, Seq: 3078856592, Ack: 797190860}}},
		{"suricata__decode-sll2-01.pcap", 1, result{P: event.Packet{Dir: event.DirOut, Src: a("192.168.1.253"), Dst: a("192.168.1.21"), Proto: 6, SrcPort: 56478, DstPort: 80, Flags: syn, Seq: 2332771219}}},
		{"zeek__nflog-http.pcap", 1, result{P: event.Packet{Dir: event.DirOut, Src: a("10.0.2.15"), Dst: a("93.184.216.34"), Proto: 6, SrcPort: 49762, DstPort: 80, Flags: syn, Seq: 1060289233}}},
		{"tcpdump__nflog.pcap", 1, result{P: event.Packet{Dir: event.DirIn, Src: a("74.82.42.42"), Dst: a("10.0.0.20"), Proto: 17, SrcPort: 53, DstPort: 42585}, PayloadLen: 45}},
		{"zeek__redis-attr.pcap", 1, result{P: event.Packet{Src: a("::1"), Dst: a("::1"), Proto: 6, SrcPort: 62282, DstPort: 6379, Flags: syn, Seq: 4092885807}}},
		{"zeek__rotation.pcap", 1, result{P: event.Packet{Src: a("10.0.0.1"), Dst: a("10.0.0.2"), Proto: 6, SrcPort: 20, DstPort: 1024, Flags: syn}}},
		// Teredo with an authentication header, carrying ICMPv6 router solicitation.
		{"zeek__Teredo.pcap", 6, result{P: event.Packet{Src: a("fe80::8000:ffff:ffff:fffd"), Dst: a("ff02::2"), Proto: 58, ICMPType: 133}, PayloadLen: 16}},
		{"arkime__ospf.pcap", 25, result{P: event.Packet{Src: a("2001:bef::2"), Dst: a("2001:bef::a00:27ff:fe0d:5c3c"), Proto: 58, ICMPType: 1,
			Quoted: event.Quoted{Valid: true, Proto: 6, Src: a("2001:bef::a00:27ff:fe0d:5c3c"), Dst: a("2607:f8b0:400f:801::200e"), SrcPort: 34808, DstPort: 80, Seq: 419032480, HasSeq: true}}, PayloadLen: 88 - 8}},
		{"suricata__kill_router6.pcap", 2, result{P: event.Packet{Src: a("2001:db8:1::3"), Dst: a("2001:db8:1:0:306e:739d:dea6:99a4"), Proto: 58, ICMPType: 1,
			Quoted: event.Quoted{Valid: true, Proto: 6, Src: a("2001:db8:1:0:306e:739d:dea6:99a4"), Dst: a("2001:16b8:4700:eb60:3a10:d5ff:fe4e:abe6"), SrcPort: 54112, DstPort: 443, Seq: 3287261035, HasSeq: true}}, PayloadLen: 92 - 8}},
		// ICMP quoting only 8 bytes of TCP: ports and sequence number.
		{"ndpi__gnutella.pcap", 372, result{P: event.Packet{Src: a("10.0.2.2"), Dst: a("10.0.2.15"), Proto: 1, ICMPType: 3, ICMPCode: 1,
			Quoted: event.Quoted{Valid: true, Proto: 6, Src: a("10.0.2.15"), Dst: a("76.68.138.207"), SrcPort: 50231, DstPort: 45079, Seq: 3605467886, HasSeq: true}}, PayloadLen: 28}},
		{"ndpi__dns_fragmented.pcap", 2, result{P: event.Packet{Src: a("193.24.227.238"), Dst: a("172.217.40.76"), Proto: 17}, Err: ErrFragment}},
		{"ndpi__dns_fragmented.pcap", 3, result{P: event.Packet{Src: a("193.24.227.238"), Dst: a("172.217.40.76"), Proto: 17, SrcPort: 53, DstPort: 56680}, PayloadLen: 1702}},
		{"zeek__ipv6-fragmented-dns.pcap", 8, result{P: event.Packet{Src: a("2607:f740:b::f93"), Dst: a("2001:470:1f11:81f:d138:5f55:6d4:1fe2"), Proto: 17, SrcPort: 53, DstPort: 51851}, PayloadLen: 3230}},
		// SYN whose options are cut by the snap length: the fixed header is whole.
		{"zeek__tcp-truncated-header.pcap", 1, result{P: event.Packet{Src: a("201.186.157.67"), Dst: a("128.3.26.249"), Proto: 6, SrcPort: 60827, DstPort: 25, Flags: 0xc2, Seq: 1041724894}}},
		{"ppa__http_ip4and6.pcapng", 2, result{P: event.Packet{Src: a("172.16.16.139"), Dst: a("172.16.16.140"), Proto: 6, SrcPort: 80, DstPort: 53350, Flags: 0x12, Seq: 749528114, Ack: 968533977}}},
	}
	cache := map[string][]frame{}
	for _, tt := range tests {
		t.Run(tt.capture, func(t *testing.T) {
			frames, ok := cache[tt.capture]
			if !ok {
				frames = readCapture(t, filepath.Join(dir, tt.capture))
				cache[tt.capture] = frames
			}
			// Decode every frame up to the wanted one: fragments before it matter.
			d := NewDecoder(Options{})
			var got result
			for _, f := range frames[:tt.frame] {
				got = decodeResult(d, f.link, f.data, f.time)
			}
			tt.want.P.WireLen = 0
			if diff := cmp.Diff(tt.want, got, cmpAddr, errCmp); diff != "" {
				t.Errorf("frame %d (-want +got):\n%s", tt.frame, diff)
			}
		})
	}
}
