package nscapture

import (
	"hash/maphash"
	"net/netip"
	"sync/atomic"

	"github.com/egress-dev/egress/event"
)

// dedup drops the copy of a packet that another namespace already
// delivered: a query between two captured namespaces (a container and
// the host's resolver, or a router forwarding it) is seen leaving one and
// entering the other, and the analyzer would count the copy as a
// retransmission. Copies are the same addresses, ports and payload within
// a second, seen in a different namespace; a retransmission in the same
// namespace is kept.
type dedup struct {
	seed    maphash.Seed
	recent  map[dupKey]dupSeen
	dropped uint64
}

type dupKey struct {
	src, dst        netip.Addr
	sport, dport    uint16
	proto           uint8
	payload, quoted uint64
}

type dupSeen struct {
	t  int64
	ns uint64
}

// dupWindow is how close in time two sightings are copies.
const dupWindow = int64(1e9)

// maxRecent bounds the table; it starts over when full.
const maxRecent = 1 << 16

func (d *dedup) seen(p *event.Packet, ns uint64) bool {
	if d.recent == nil || len(d.recent) >= maxRecent {
		if d.recent == nil {
			d.seed = maphash.MakeSeed()
		}
		d.recent = make(map[dupKey]dupSeen)
	}
	k := dupKey{src: p.Src, dst: p.Dst, sport: p.SrcPort, dport: p.DstPort, proto: p.Proto,
		payload: maphash.Bytes(d.seed, p.Payload)}
	if p.Proto == event.ProtoTCP {
		k.quoted = uint64(p.Seq)<<32 | uint64(p.Flags)
	}
	if prev, ok := d.recent[k]; ok && prev.ns != ns && p.Time-prev.t < dupWindow && prev.t-p.Time < dupWindow {
		atomic.AddUint64(&d.dropped, 1)
		return true
	}
	d.recent[k] = dupSeen{t: p.Time, ns: ns}
	return false
}
