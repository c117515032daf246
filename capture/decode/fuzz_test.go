package decode

import (
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

var fuzzLinks = []LinkType{LinkNull, LinkEthernet, LinkRawDLT12, LinkRawDLT14, LinkRaw, LinkLoop,
	LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkNFLOG, LinkLinuxSLL2}

// FuzzDecode feeds arbitrary frames of every link type to one decoder in
// turn (so reassembly state carries over) and checks Decode never panics
// and keeps its contract on the fields it must not touch.
func FuzzDecode(f *testing.F) {
	if _, ok := corpustest.Find(); ok {
		for _, path := range corpusCaptures(f) {
			frames := readCapture(f, path)
			// A few frames from each capture: every link type and tunnel there.
			for i := 0; i < len(frames); i += max(1, len(frames)/8) {
				f.Add(uint8(linkIndex(frames[i].link)), frames[i].data)
			}
		}
	}
	f.Add(uint8(1), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0, 0, 1, 0x88, 0x47, 0, 0, 1, 0xff, 0x45})
	f.Add(uint8(9), []byte{2, 0, 0, 0, 8, 0, 1, 0, 0, 8, 3, 0, 6, 0, 9, 0, 0x45, 0})
	d := NewDecoder(Options{MaxFragDatagrams: 4, MaxFragBytes: 8000})
	f.Fuzz(func(t *testing.T, li uint8, frame []byte) {
		link := fuzzLinks[int(li)%len(fuzzLinks)]
		p := event.Packet{Time: 42, WireLen: 7, Iface: 3}
		err := d.Decode(link, frame, &p)
		if p.Time != 42 || p.WireLen != 7 || p.Iface != 3 {
			t.Fatalf("caller's fields changed: %+v", p)
		}
		if err == nil && p.Proto == 0 && !p.Src.IsValid() {
			t.Fatalf("success without a decoded packet: %+v", p)
		}
		if len(p.Payload) > 65535 {
			t.Fatalf("payload of %d bytes", len(p.Payload))
		}
	})
}

func linkIndex(l LinkType) int {
	for i, x := range fuzzLinks {
		if x == l {
			return i
		}
	}
	return 0
}
