package afpacket

import (
	"context"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Source returns the capture as a capture.Source: each decoded frame is an
// *event.Packet whose Frame field holds the captured bytes (for a pcapng
// copy); a frame that could not be decoded is an *event.Undecoded, already
// counted in Stats.
func (c *Capture) Source() capture.Source { return captureSource{c} }

type captureSource struct{ c *Capture }

func (s captureSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.c.Run(ctx, func(f *Frame) {
		if f.Err != nil {
			sink.Observe(&event.Undecoded{Time: f.Time, Frame: f.Data, WireLen: f.WireLen})
			return
		}
		f.Packet.Frame = f.Data
		sink.Observe(&f.Packet)
	})
}

func (s captureSource) Stats() event.Stats { return s.c.Stats() }

var _ capture.Source = captureSource{}
