package capture

import (
	"context"

	"github.com/egress-dev/egress/event"
)

// Source is one thing egress can see: a capture file, the kernel's socket
// tracepoints, a live AF_PACKET socket, the cgroup blocker, the DNS proxy.
//
// Run emits observations to sink until the source ends (the end of a
// file) or ctx is done, and returns nil at a natural end, ctx.Err() on
// cancellation, or the error that stopped it (everything before it was
// emitted). A source runs once. Stats may be called at any time; it is
// complete once Run has returned.
type Source interface {
	Run(ctx context.Context, sink Sink) error
	Stats() event.Stats
}

// Sink receives observations, on the goroutine that runs the source. The
// value and everything it points to are valid only during the call: a sink
// that keeps one copies it (Process values are never changed once emitted,
// so the pointer may be kept).
type Sink interface {
	Observe(event.Observation)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(event.Observation)

// Observe calls f(o).
func (f SinkFunc) Observe(o event.Observation) { f(o) }
