package analyze

import (
	"net/netip"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

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
	case *event.Activity:
		a.Activity(o)
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

// settledConnection hands a new record to cfg.Settled when it is surely
// egress already (Finish decides with everything seen): the local
// addresses are given, or its client already sent packets outbound. Other
// records wait for the final report (the pipeline writes them then).
func (a *Analyzer) settledConnection(c *report.Connection) {
	if a.cfg.Settled == nil || !(c.Loopback || a.surelyLocal(c.SrcIP)) {
		return
	}
	cp := *c
	cp.LostMS = a.settledLost(a.connSp[len(a.connSp)-1])
	cp.SynTimesMS = append([]float64{}, c.SynTimesMS...)
	a.cfg.Settled.Connection(&cp)
}

func (a *Analyzer) settledLookup(l *report.Lookup) {
	if a.cfg.Settled == nil {
		return
	}
	client := l.Client
	if !client.IsValid() || !(client.IsLoopback() || a.surelyLocal(client)) {
		return
	}
	cp := *l
	cp.LostMS = a.settledLost(a.lkSp[len(a.lkSp)-1])
	cp.Answers = append([]string{}, l.Answers...)
	a.cfg.Settled.Lookup(&cp)
}

// surelyLocal says whether Finish will take src for one of this host's
// addresses, whatever comes later: given ones, or one seen sending out
// (the direction basis only grows).
func (a *Analyzer) surelyLocal(src netip.Addr) bool {
	switch {
	case a.cfg.LocalAny:
		return true
	case len(a.cfg.Local) > 0:
		return inPrefixes(a.cfg.Local, src)
	}
	return a.dirOut.has(src) || a.dirOut.has(src.Unmap())
}
