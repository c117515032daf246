package decode

import "net/netip"

// The reassembler holds UDP fragments until their datagram is whole. It is
// bounded three ways: a fixed number of slots, a byte budget and an age on
// packet timestamps; whatever it drops is counted in Stats.Evicted. Slot
// buffers are allocated once at their first use and then reused, so a
// steady stream of fragments allocates nothing.

// maxFragSpans bounds the disjoint byte ranges one datagram may be in while
// incomplete; real fragment trains arrive in order and use one or two.
const maxFragSpans = 16

// maxDatagram is the largest IP payload a fragment train can rebuild.
const maxDatagram = 65535

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
	v6       bool
}

type span struct{ start, end int }

type fragSlot struct {
	used  bool
	key   fragKey
	first int64  // timestamp of its first fragment
	order uint64 // creation order, for evicting the oldest
	total int    // datagram length, -1 until the last fragment arrives
	held  int    // fragment bytes counted against the budget
	n     int
	spans [maxFragSpans]span
	buf   []byte
}

type reassembler struct {
	slots    []fragSlot
	maxBytes int
	timeout  int64 // nanoseconds
	held     int
	order    uint64
}

type fragStatus uint8

const (
	fragRefused fragStatus = iota // not held: no room, too large or too scattered
	fragHeld                      // held, datagram still incomplete
	fragDone                      // datagram complete: returned bytes are whole
)

func (r *reassembler) pending() int {
	n := 0
	for i := range r.slots {
		if r.slots[i].used {
			n++
		}
	}
	return n
}

func (r *reassembler) free(s *fragSlot) {
	r.held -= s.held
	s.used = false
	s.held = 0
	s.n = 0
}

// add stores one fragment's data at byte offset off. When the datagram is
// complete it returns it; the bytes stay valid until the next call to add.
func (r *reassembler) add(key fragKey, off int, more bool, data []byte, now int64, st *Stats) ([]byte, fragStatus) {
	end := off + len(data)
	if len(r.slots) == 0 || end > maxDatagram || len(data) > r.maxBytes || (more && len(data) == 0) {
		return nil, fragRefused
	}
	var slot, freeSlot, oldest *fragSlot
	for i := range r.slots {
		s := &r.slots[i]
		if s.used && now-s.first > r.timeout {
			r.free(s)
			st.Evicted++
		}
		switch {
		case !s.used:
			if freeSlot == nil {
				freeSlot = s
			}
		case s.key == key:
			slot = s
		case oldest == nil || s.order < oldest.order:
			oldest = s
		}
	}
	// Make room in the byte budget by evicting the oldest other datagrams.
	for r.held+len(data) > r.maxBytes {
		victim := r.oldestExcept(slot)
		if victim == nil {
			return nil, fragRefused
		}
		if victim == oldest {
			oldest = nil
		}
		r.free(victim)
		st.Evicted++
		if freeSlot == nil {
			freeSlot = victim
		}
	}
	if slot == nil {
		if freeSlot == nil {
			if oldest == nil {
				return nil, fragRefused
			}
			r.free(oldest)
			st.Evicted++
			freeSlot = oldest
		}
		slot = freeSlot
		r.order++
		*slot = fragSlot{used: true, key: key, first: now, order: r.order, total: -1, buf: slot.buf}
		if slot.buf == nil {
			slot.buf = make([]byte, maxDatagram)
		}
	}
	if !more {
		if slot.total >= 0 && slot.total != end {
			r.free(slot) // two different ends: the train is corrupt
			st.Evicted++
			return nil, fragRefused
		}
		slot.total = end
	}
	if slot.total >= 0 && end > slot.total {
		r.free(slot)
		st.Evicted++
		return nil, fragRefused
	}
	if !slot.addSpan(off, end) {
		r.free(slot)
		st.Evicted++
		return nil, fragRefused
	}
	copy(slot.buf[off:end], data)
	slot.held += len(data)
	r.held += len(data)
	if slot.total >= 0 && slot.n == 1 && slot.spans[0].start == 0 && slot.spans[0].end == slot.total {
		out := slot.buf[:slot.total]
		r.free(slot)
		return out, fragDone
	}
	return nil, fragHeld
}

func (r *reassembler) oldestExcept(keep *fragSlot) *fragSlot {
	var o *fragSlot
	for i := range r.slots {
		s := &r.slots[i]
		if s.used && s != keep && (o == nil || s.order < o.order) {
			o = s
		}
	}
	return o
}

// addSpan merges [start, end) into the slot's sorted, disjoint spans. It
// reports false when the datagram would need more than maxFragSpans spans.
func (s *fragSlot) addSpan(start, end int) bool {
	var out [maxFragSpans]span
	n := 0
	placed := false
	for _, r := range s.spans[:s.n] {
		switch {
		case r.end < start:
		case r.start > end:
			if !placed {
				if n == len(out) {
					return false
				}
				out[n] = span{start, end}
				n++
				placed = true
			}
		default: // overlaps or touches: absorb it
			start, end = min(start, r.start), max(end, r.end)
			continue
		}
		if n == len(out) {
			return false
		}
		out[n] = r
		n++
	}
	if !placed {
		if n == len(out) {
			return false
		}
		out[n] = span{start, end}
		n++
	}
	s.spans, s.n = out, n
	return true
}
