package analyze

import "github.com/egress-dev/egress/event"

// Observe takes one observation of any kind a source emits, so an Analyzer
// is a capture.Sink. Refused calls (*event.Blocked) and undecodable frames
// are not the analyzer's: the pipeline handles them.
func (a *Analyzer) Observe(o event.Observation) {
	switch o := o.(type) {
	case *event.Packet:
		a.Packet(o)
	case *event.Sock:
		a.Sock(o)
	case *event.DNS:
		a.DNS(o)
	}
}

// DNS observes one whole DNS message seen outside a packet flow (a query
// or an answer relayed by egress run's DNS proxy).
func (a *Analyzer) DNS(d *event.DNS) {
	p := event.Packet{Time: d.Time, Dir: event.DirOut, Proto: event.ProtoUDP,
		Src: d.Client.Addr(), SrcPort: d.Client.Port(), Dst: d.Server.Addr(), DstPort: d.Server.Port(), Proc: d.Proc}
	if d.TCP {
		p.Proto = event.ProtoTCP
	}
	if d.Response {
		p.Dir, p.Proc = event.DirIn, nil
		p.Src, p.SrcPort, p.Dst, p.DstPort = p.Dst, p.DstPort, p.Src, p.SrcPort
	}
	a.DNSMessage(&p, d.Msg, d.TCP)
}

// End tells the analyzer where a live window closed, once everything up to
// that time has been observed: the clock moves to the edge (what has gone
// stale by then is settled, as a packet at that time would), Finish ends
// the window there, and later observations count as outside the window.
func (a *Analyzer) End(to int64) {
	a.clock(to)
	a.cfg.To = to
}
