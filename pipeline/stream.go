package pipeline

import (
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
// gives each call what the final report gives it (the blocker's reason,
// the rules' verdict) and keeps the first write error.
type streamer struct {
	out     Stream
	pol     *rules.Policy
	cat     *rules.Catalog
	blocked *blockedCalls
	// refusals: a source reports refused calls, whose records reach the
	// pipeline later than the failed connect() the analyzer settles at
	// once; such calls wait in held (bounded) until the end.
	refusals bool
	held     []*report.Connection
	err      error
}

// maxHeld bounds the calls held back for the blocker's word.
const maxHeld = 10000

func (s *streamer) Connection(c *report.Connection) {
	if s.refusals && mayBeRefused(c) && len(s.held) < maxHeld {
		s.held = append(s.held, c)
		return
	}
	s.write(c)
}

// mayBeRefused: a connect that failed at once may be one the blocker
// refused.
func mayBeRefused(c *report.Connection) bool {
	return c.Outcome == report.Rejected && c.Attempts <= 1
}

// flush writes the held calls, now that every refusal is in.
func (s *streamer) flush() {
	for _, c := range s.held {
		s.write(c)
	}
	s.held = nil
}

func (s *streamer) write(c *report.Connection) {
	if s.blocked.refusedConnect(c) {
		c.EndBasis = report.BasisBlockedConnect
	}
	s.judge(&report.Report{Connections: []report.Connection{*c}}, func(r *report.Report) { *c = r.Connections[0] })
	if s.err == nil {
		s.err = s.out.Connection(c)
	}
}

func (s *streamer) Lookup(l *report.Lookup) {
	if s.blocked.refusedLookup(l) {
		l.EndBasis = report.BasisBlockedLookup
	}
	s.judge(&report.Report{Lookups: []report.Lookup{*l}}, func(r *report.Report) { *l = r.Lookups[0] })
	if s.err == nil {
		s.err = s.out.Lookup(l)
	}
}

// judge applies the rules to a report of one call and copies it back.
func (s *streamer) judge(r *report.Report, back func(*report.Report)) {
	if s.pol == nil && s.cat == nil {
		return
	}
	rules.Annotate(r, s.pol, s.cat)
	back(r)
}
