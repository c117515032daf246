package sched

import (
	"context"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Source returns the tracer as a capture.Source: the scheduler view's
// changes are *event.Activity observations, and the changes the kernel
// dropped are its Stats().Lost.
func (t *Tracer) Source() capture.Source { return tracerSource{t} }

type tracerSource struct{ t *Tracer }

func (s tracerSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.t.Run(ctx, func(a event.Activity) { sink.Observe(&a) })
}

func (s tracerSource) Stats() event.Stats { return event.Stats{Lost: s.t.Lost()} }

var _ capture.Source = tracerSource{}
