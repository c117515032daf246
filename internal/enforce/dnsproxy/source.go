package dnsproxy

import (
	"context"
	"net/netip"
	"sync"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
)

// Exchanges turns what a Proxy relays into a capture.Source: give its
// Observe to Config.Observe, and run it as a source. Each exchange becomes
// two *event.DNS observations, the query and the reply, at their times.
type Exchanges struct {
	// Owner, when set, names the process behind a query's socket. It is
	// asked in Observe, before the reply is sent, while the client's
	// socket is still open (/proc can still say whose it is).
	Owner func(client netip.AddrPort, tcp bool) *event.Process

	ch       chan owned
	done     chan struct{}
	doneOnce sync.Once
}

// NewExchanges returns a source with room for queue exchanges in flight;
// beyond that, Observe waits (the proxy's reply waits with it) until the
// source has caught up or stopped.
func NewExchanges(queue int) *Exchanges {
	return &Exchanges{ch: make(chan owned, queue), done: make(chan struct{})}
}

// owned is an exchange with the process that asked (nil: unknown).
type owned struct {
	Exchange
	proc *event.Process
}

// Observe is the Config.Observe callback. Once the source has stopped it
// drops the exchange, so the proxy never blocks on it.
func (x *Exchanges) Observe(e Exchange) {
	o := owned{Exchange: e}
	if x.Owner != nil {
		o.proc = x.Owner(e.Client, e.TCP)
	}
	select {
	case x.ch <- o:
	case <-x.done:
	}
}

// Run emits the exchanges until ctx is done and returns ctx.Err().
func (x *Exchanges) Run(ctx context.Context, sink capture.Sink) error {
	defer x.doneOnce.Do(func() { close(x.done) })
	for {
		select {
		case e := <-x.ch:
			sink.Observe(&event.DNS{Time: e.QueryTime, Client: e.Client, Server: e.Upstream, TCP: e.TCP, Msg: e.Query, Proc: e.proc})
			if e.Reply != nil {
				sink.Observe(&event.DNS{Time: e.ReplyTime, Client: e.Client, Server: e.Upstream, TCP: e.TCP,
					Response: true, Refused: e.Refused, Msg: e.Reply})
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats is empty: the proxy reads no packets and loses nothing.
func (x *Exchanges) Stats() event.Stats { return event.Stats{} }

var _ capture.Source = (*Exchanges)(nil)
