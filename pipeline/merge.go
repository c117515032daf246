package pipeline

import (
	"bytes"
	"container/heap"

	"github.com/egress-dev/egress/event"
)

// queue holds live observations until they can be released in time order:
// the kernel's socket events, captured packets, the proxy's messages and
// the blocker's refusals come through different buffers.
type queue struct {
	h   pendingHeap
	seq uint64
}

type pending struct {
	t   int64
	seq uint64 // arrival order, for equal times
	o   event.Observation
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	return h[i].t < h[j].t || (h[i].t == h[j].t && h[i].seq < h[j].seq)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = pending{}
	*h = old[:len(old)-1]
	return x
}

func (q *queue) push(o event.Observation) {
	q.seq++
	heap.Push(&q.h, pending{t: o.When(), seq: q.seq, o: o})
}

// pop returns the oldest observation if it is no later than until.
func (q *queue) pop(until int64) (event.Observation, bool) {
	if len(q.h) == 0 || q.h[0].t > until {
		return nil, false
	}
	return heap.Pop(&q.h).(pending).o, true
}

func (q *queue) len() int { return len(q.h) }

// clone copies an observation out of its source's buffers, so it can wait
// in the queue: a source's values are valid only during its Observe call.
// Process values are immutable once emitted and are shared.
func clone(o event.Observation) event.Observation {
	switch o := o.(type) {
	case *event.Packet:
		c := *o
		if o.Frame != nil {
			c.Frame = bytes.Clone(o.Frame)
			c.Payload = rebase(o.Payload, o.Frame, c.Frame)
		} else {
			c.Payload = bytes.Clone(o.Payload)
		}
		return &c
	case *event.Sock:
		c := *o
		return &c
	case *event.DNS:
		c := *o
		c.Msg = bytes.Clone(o.Msg)
		return &c
	case *event.Blocked:
		c := *o
		return &c
	case *event.Undecoded:
		c := *o
		c.Frame = bytes.Clone(o.Frame)
		return &c
	case *event.Activity:
		c := *o
		return &c
	}
	return o
}

// rebase returns the part of to that sub is of from, or a copy of sub when
// it does not point into from.
func rebase(sub, from, to []byte) []byte {
	if len(sub) == 0 {
		return nil
	}
	for off := 0; off+len(sub) <= len(from); off++ {
		if &from[off] == &sub[0] {
			return to[off : off+len(sub) : off+len(sub)]
		}
	}
	return bytes.Clone(sub)
}
