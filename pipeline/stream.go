package pipeline

import (
	"net/netip"
	"time"

	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// Stream receives each call as soon as it is settled, judged by the rules
// and the catalog (report.JSONL is one). The record is the receiver's.
type Stream interface {
	Connection(*report.Connection) error
	Lookup(*report.Lookup) error
}

// streamer sits between the analyzer's settled calls and a Stream: it
// gives each call what the final report gives it (the rules' verdict, the
// proxy's reason) and keeps the first write error. A call whose record
// the end can still change (a connect the blocker may have refused, a
// loopback connection the proxy steered, lookups judged at the end) is
// written at the end, from the final report, as are the records only the
// end knows (what the cgroup programs reported).
type streamer struct {
	out     Stream
	pol     *rules.Policy
	cat     *rules.Catalog
	crit    *report.Criteria
	blocked *blockedCalls
	// refusals: a source reports refused calls, whose records reach the
	// pipeline later than the failed connect() the analyzer settles.
	refusals bool
	// holdLookups: lookups are judged at the end (Config.JudgeLookups).
	holdLookups bool
	// written are the calls already out, so the end writes the rest once.
	written  map[connKey]bool
	writtenL map[lookupKey]bool
	err      error
}

type connKey struct {
	start   time.Time
	src     netip.Addr
	srcPort uint16
	proto   string
	pid     int
	outcome report.Outcome
}

type lookupKey struct {
	start       time.Time
	client      netip.Addr
	server      netip.AddrPort
	name, qtype string
	transport   string
	pid         int
}

func keyOf(c *report.Connection) connKey {
	return connKey{c.Start, c.SrcIP, c.SrcPort, c.Proto, pidOf(c.PID), c.Outcome}
}

func lookupKeyOf(l *report.Lookup) lookupKey {
	return lookupKey{l.Start, l.Client, l.Server, l.Name, l.QType, l.Transport, pidOf(l.PID)}
}

func pidOf(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// hold says whether the end may still change c's record.
func (s *streamer) hold(c *report.Connection) bool {
	return s.refusals && (c.Outcome == report.Rejected && c.Attempts <= 1 || c.Loopback)
}

func (s *streamer) Connection(c *report.Connection) {
	if s.hold(c) {
		return
	}
	s.judge(&report.Report{Connections: []report.Connection{*c}}, func(r *report.Report) { *c = r.Connections[0] })
	s.write(c)
}

func (s *streamer) Lookup(l *report.Lookup) {
	if s.holdLookups {
		return
	}
	if s.blocked.refusedLookup(l) {
		l.EndBasis = report.BasisBlockedLookup
	}
	s.judge(&report.Report{Lookups: []report.Lookup{*l}}, func(r *report.Report) { *l = r.Lookups[0] })
	s.writeLookup(l)
}

func (s *streamer) write(c *report.Connection) {
	if s.written == nil {
		s.written = map[connKey]bool{}
	}
	s.written[keyOf(c)] = true
	if s.err == nil {
		s.err = s.out.Connection(c)
	}
}

func (s *streamer) writeLookup(l *report.Lookup) {
	if s.writtenL == nil {
		s.writtenL = map[lookupKey]bool{}
	}
	s.writtenL[lookupKeyOf(l)] = true
	if s.err == nil {
		s.err = s.out.Lookup(l)
	}
}

// finish writes the calls of the final report not written yet.
func (s *streamer) finish(r *report.Report) {
	for i := range r.Connections {
		if c := r.Connections[i]; !s.written[keyOf(&c)] {
			s.write(&c)
		}
	}
	for i := range r.Lookups {
		if l := r.Lookups[i]; !s.writtenL[lookupKeyOf(&l)] {
			s.writeLookup(&l)
		}
	}
}

// judge applies the rules to a report of one call and copies it back.
func (s *streamer) judge(r *report.Report, back func(*report.Report)) {
	if s.pol == nil && s.cat == nil && s.crit == nil {
		return
	}
	if s.pol != nil || s.cat != nil {
		rules.Annotate(r, s.pol, s.cat)
	}
	if s.crit != nil {
		report.Judge(r, *s.crit)
	}
	back(r)
}
