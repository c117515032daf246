package nscapture

import (
	"net/netip"
	"testing"

	"github.com/egress-dev/egress/event"
)

func TestDedup(t *testing.T) {
	var d dedup
	q := func(ms int64, payload string) *event.Packet {
		return &event.Packet{Time: ms * 1e6, Proto: event.ProtoUDP, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"),
			SrcPort: 40000, DstPort: 53, Payload: []byte(payload)}
	}
	for _, tc := range []struct {
		p    *event.Packet
		ns   uint64
		drop bool
		why  string
	}{
		{q(0, "query"), 1, false, "first sighting"},
		{q(1, "query"), 2, true, "the same packet entering the server's namespace"},
		{q(1000, "query"), 1, false, "a retransmission in the client's namespace"},
		{q(1001, "other"), 2, false, "another payload"},
		{q(3000, "query"), 2, false, "too late to be a copy"},
	} {
		if got := d.seen(tc.p, tc.ns); got != tc.drop {
			t.Errorf("%s: dropped %v, want %v", tc.why, got, tc.drop)
		}
	}
	if d.dropped != 1 {
		t.Errorf("dropped count %d", d.dropped)
	}
}
