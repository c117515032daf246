package ebpf

import (
	"context"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Source returns the tracer as a capture.Source: its socket events are
// *event.Sock observations, and the records the kernel dropped are its
// Stats().Lost.
func (t *Tracer) Source() capture.Source { return tracerSource{t} }

type tracerSource struct{ t *Tracer }

func (s tracerSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.t.Run(ctx, sockSink{sink})
}

func (s tracerSource) Stats() event.Stats { return event.Stats{Lost: s.t.Lost()} }

type sockSink struct{ sink capture.Sink }

func (s sockSink) Sock(e *event.Sock) { s.sink.Observe(e) }

var _ capture.Source = tracerSource{}
