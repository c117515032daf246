package block

import (
	"context"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Source returns the blocker as a capture.Source: each refused call is an
// *event.Blocked, and the refusals the ring buffer could not hold are its
// Stats().Lost.
func (b *Blocker) Source() capture.Source { return blockerSource{b} }

type blockerSource struct{ b *Blocker }

func (s blockerSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.b.Run(ctx, func(bl Blocked) {
		sink.Observe(&event.Blocked{Time: bl.Time, Proto: bl.Proto, Dst: bl.Dst,
			Proc: &event.Process{PID: bl.PID, Comm: bl.Comm}})
	})
}

func (s blockerSource) Stats() event.Stats { return event.Stats{Lost: s.b.Lost()} }

var _ capture.Source = blockerSource{}
