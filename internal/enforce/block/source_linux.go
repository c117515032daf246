package block

import (
	"context"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Source returns the blocker as a capture.Source: each record is an
// *event.Blocked, and the records the ring buffer could not hold are its
// Stats().Lost.
func (b *Blocker) Source() capture.Source { return blockerSource{b} }

type blockerSource struct{ b *Blocker }

func (s blockerSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.b.Run(ctx, func(bl Blocked) {
		e := Event(bl)
		sink.Observe(&e)
	})
}

func (s blockerSource) Stats() event.Stats { return event.Stats{Lost: s.b.Lost()} }

var _ capture.Source = blockerSource{}

// The record kinds are the model's (event.BlockedKind).
var _ = [1]struct{}{}[KindRefused-uint8(event.BlockedRefused)+KindCall-uint8(event.BlockedCall)+
	KindPacket-uint8(event.BlockedPacket)+KindSteered-uint8(event.BlockedSteered)+KindConn-uint8(event.BlockedConn)]

// Event is b in the observation model.
func Event(b Blocked) event.Blocked {
	e := event.Blocked{Time: b.Time, Kind: event.BlockedKind(b.Kind), Proto: b.Proto, Dst: b.Dst, Refused: b.Refused,
		SkType: b.SkType, UID: b.UID, ConnOp: b.ConnOp, Cookie: b.Cookie}
	if b.PID > 0 {
		e.Proc = &event.Process{PID: b.PID, Comm: b.Comm}
	}
	return e
}

// FromEvent is e as the blocker's record (for Seen).
func FromEvent(e *event.Blocked) Blocked {
	b := Blocked{Time: e.Time, Kind: uint8(e.Kind), Proto: e.Proto, Dst: e.Dst, Refused: e.Refused,
		SkType: e.SkType, UID: e.UID, ConnOp: e.ConnOp, Cookie: e.Cookie}
	if e.Proc != nil {
		b.PID, b.Comm = e.Proc.PID, e.Proc.Comm
	}
	return b
}
