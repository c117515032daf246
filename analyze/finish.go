package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/egress-dev/egress/report"
)

// Finish closes the window, decides what is still open and returns the
// report. The Analyzer must not be used afterwards.
func (a *Analyzer) Finish() *report.Report {
	start, end := a.first, a.last
	if a.cfg.From != 0 {
		start = a.cfg.From
	}
	if a.cfg.To != 0 {
		end = a.cfg.To
	}
	if end < start {
		end = start
	}
	// Calls still open are settled as of the last observation read, which
	// may lie past the window's end (Config.Settle): an answer just after
	// --to is an answer.
	now := max(a.last, end)
	// Nothing is reused from here on, and what is finished is let go at
	// once: the records still grow, and the end of a busy replay was its
	// peak of memory.
	a.noReuse, a.freeFlows, a.freeLookups = true, nil, nil
	all := make([]*flow, 0, len(a.flows))
	for _, f := range a.flows {
		all = append(all, f)
	}
	a.flows = nil
	a.finishFlows(all, now)
	socks := make([]*attempt, 0, len(a.sockets))
	for c, at := range a.sockets {
		socks = append(socks, at)
		delete(a.sockets, c)
	}
	sort.Slice(socks, func(i, j int) bool { return attemptLess(socks[i], socks[j]) })
	for _, at := range socks {
		a.finishAttempt(at, now)
	}
	a.finishLookups(func(*lookup) bool { return true }, now, false)
	a.dropTables()

	r := &report.Report{
		SchemaVersion: report.SchemaVersion,
		// Both filtered in place: the Analyzer is done, and a copy of a
		// busy capture's records was the replay's peak of memory.
		Connections: a.conns[:0:len(a.conns)],
		Hints:       []report.Hint{},
		Errors:      []string{},
		Stats:       a.stats,
	}
	if a.first != 0 || a.cfg.From != 0 {
		r.Window.Start = time.Unix(0, start).UTC()
		r.Window.End = time.Unix(0, end).UTC()
		r.Window.DurationMS = ms(end - start)
	}
	isEgress := a.egressFunc(&r.Local)

	// Records folded over client hosts had their direction decided when
	// their calls ended (fold.go); every other record holds the calls of
	// one client and one destination, decided here from the whole capture.
	decided := func(by string) bool { return by == report.FoldDestination || by == report.FoldOutcome }
	var connSp, lkSp []lostSpan
	for i, c := range a.conns {
		switch {
		case decided(c.FoldedBy) || c.Loopback || isEgress(c.SrcIP, c.DstIP):
			if c.FoldedBy == report.FoldOutcome {
				c.Destinations = a.otherConnDests[c.Outcome]
			}
			r.Connections = append(r.Connections, c)
			connSp = append(connSp, a.connSp[i])
		default:
			r.Stats.InboundAttempts += uint64(c.Count)
		}
	}
	keepLookup := make([]bool, len(a.lks))
	for i := range a.lks {
		// Server is invalid for the catch-all record.
		l := &a.lks[i]
		keepLookup[i] = decided(l.FoldedBy) || l.Client.IsValid() && (isEgress(l.Client, l.Server.Addr()) || l.Client.IsLoopback())
	}
	// The hints read the records by their index: before the filter.
	hints := a.hints(keepLookup)
	r.Lookups = a.lks[:0:len(a.lks)]
	for i, l := range a.lks {
		if keepLookup[i] {
			if l.FoldedBy == report.FoldOutcome {
				l.Destinations = a.otherLookupDests[l.Outcome]
			}
			r.Lookups = append(r.Lookups, l)
			lkSp = append(lkSp, a.lkSp[i])
		}
	}
	clear(a.lks[len(r.Lookups):])
	r.Window.LostMS, r.Window.LostBasis = a.lostTime(r.Connections, connSp, r.Lookups, lkSp, start, end)
	r.Stats.ActivityCoarsenedMS = a.stats.ActivityCoarsenedMS
	r.Connections = byStart(r.Connections, func(c *report.Connection) time.Time { return c.Start })
	r.Lookups = byStart(r.Lookups, func(l *report.Lookup) time.Time { return l.Start })

	r.Window.BlockedMS = a.blocked(r, start, end)
	// --local any takes every address as this host's: one host.
	if hosts, n, failing := a.hostSummaries(r, start, end); n > 1 && !a.cfg.LocalAny {
		r.Hosts, r.HostsSeen, r.HostsFailing = hosts, n, failing
	}
	r.Headline = report.Headline(r)
	r.Hints = hints
	r.Hints = append(r.Hints, a.stackHints(r)...)
	return r
}

// dropTables lets the collector have the tables that follow open calls,
// once every call is finished: the report is built and written with them
// gone, so replay's peak memory is the larger of the two, not their sum.
func (a *Analyzer) dropTables() {
	a.flows, a.freeFlows, a.orphans = nil, nil, nil
	a.lookups, a.freeLookups = nil, nil
	a.sockets, a.socketByTuple, a.waiting = nil, nil, nil
	a.names = nameTable{}
	a.folded, a.otherDests, a.interned = nil, nil, nil
}

// stackHints says, once per process, when its stacks (--stacks) name no
// function of the application: the code has no symbols or no frame
// pointers, and the report can only give module+offset.
func (a *Analyzer) stackHints(r *report.Report) []report.Hint {
	var hints []report.Hint
	seen := map[string]bool{}
	for _, c := range r.Connections {
		if len(c.Stack) == 0 {
			continue
		}
		if site, ok := report.CallSite(c.Stack, a.cfg.AppFrames); ok && site.Function != "" {
			continue
		}
		who := report.ProcName(c.PID, c.Comm)
		if seen[who] || len(hints) >= 20 {
			continue
		}
		seen[who] = true
		hints = append(hints, report.StackUnnamedHint(who))
	}
	return hints
}

// egressFunc decides which addresses are this host's, says why in l, and
// returns the test for "a call from src to dst is egress". Where the local
// addresses are known (flag, capture direction) a call is egress when its
// client is local. Where they are only inferred (the hosts that both accept
// and make connections), a call is egress unless it goes to such a host:
// the inference cannot see every address of the host (its IPv6 address may
// never accept anything), but it does see where inbound calls go.
func (a *Analyzer) egressFunc(l *report.Local) func(src, dst netip.Addr) bool {
	isLocal := a.localFunc(l)
	if l.Basis == "inferred-servers" {
		return func(_, dst netip.Addr) bool { return !isLocal(dst) }
	}
	return func(src, _ netip.Addr) bool { return isLocal(src) }
}

// localFunc decides which addresses are this host's and says why in l.
func (a *Analyzer) localFunc(l *report.Local) func(netip.Addr) bool {
	switch {
	case a.cfg.LocalAny:
		l.Basis = "any"
		l.Addresses = []string{}
		return func(netip.Addr) bool { return true }
	case len(a.cfg.Local) > 0:
		l.Basis = "flag"
		for _, p := range a.cfg.Local {
			l.Addresses = append(l.Addresses, p.String())
		}
		prefixes := a.cfg.Local
		return func(x netip.Addr) bool {
			x = x.Unmap()
			for _, p := range prefixes {
				if p.Contains(x) {
					return true
				}
			}
			return false
		}
	}
	set := map[netip.Addr]bool{}
	switch {
	case len(a.dirOut.m) > 0:
		l.Basis = "capture-direction"
		for x := range a.dirOut.m {
			set[x.Unmap()] = true
		}
	default:
		set = a.inferredLocal()
		l.Basis = "inferred-servers"
		if len(set) == 0 {
			l.Basis = "all-initiators"
			for x := range a.initiators.m {
				set[x.Unmap()] = true
			}
			for _, lk := range a.lks {
				if lk.Client.IsValid() {
					set[lk.Client] = true
				}
			}
		}
	}
	addrs := make([]netip.Addr, 0, len(set))
	for x := range set {
		addrs = append(addrs, x)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	l.Addresses = make([]string, 0, len(addrs))
	for _, x := range addrs {
		l.Addresses = append(l.Addresses, x.String())
	}
	return func(x netip.Addr) bool { return set[x.Unmap()] }
}

type interval struct{ from, to int64 }

// blocked returns the union of the blocked intervals of egress calls inside
// [start, end], in milliseconds: calls in parallel are not counted twice.
func (a *Analyzer) blocked(r *report.Report, start, end int64) float64 {
	var iv []interval
	clip := func(from, to time.Time) {
		f, t := from.UnixNano(), to.UnixNano()
		if f < start {
			f = start
		}
		if t > end {
			t = end
		}
		if t > f {
			iv = append(iv, interval{f, t})
		}
	}
	// A record's start and end are its first call's; the calls folded into
	// it gave theirs as they ended (hosts.go).
	for _, c := range r.Connections {
		if !c.Loopback {
			clip(c.Start, c.End)
		}
	}
	for _, l := range r.Lookups {
		clip(l.Start, l.End)
	}
	iv = append(iv, a.foldedBlocked.iv...)
	return ms(union(iv))
}

func union(iv []interval) int64 {
	sort.Slice(iv, func(i, j int) bool { return iv[i].from < iv[j].from })
	var total, curFrom, curTo int64
	for i, x := range iv {
		if i == 0 || x.from > curTo {
			total += curTo - curFrom
			curFrom, curTo = x.from, x.to
			continue
		}
		if x.to > curTo {
			curTo = x.to
		}
	}
	return total + curTo - curFrom
}

// hints lists names that were resolved for this host but never contacted:
// the sign of a firewall on the capturing host that drops SYNs before the
// capture point.
func (a *Analyzer) hints(keep []bool) []report.Hint {
	hints := []report.Hint{}
	if a.contacted.overflow {
		return hints
	}
	seen := map[string]bool{}
	more := 0
	for _, al := range a.answers {
		if al.index >= len(keep) || !keep[al.index] || len(al.addrs) == 0 {
			continue
		}
		l := a.lks[al.index]
		contacted := false
		for _, ad := range al.addrs {
			if a.contacted.has(ad) || a.contacted.has(ad.Unmap()) {
				contacted = true
				break
			}
		}
		if contacted || seen[l.Name] {
			continue
		}
		seen[l.Name] = true
		if len(hints) >= 20 {
			more++
			continue
		}
		hints = append(hints, report.ResolvedNotContactedHint(l.Name, l.Answers))
	}
	if more > 0 {
		hints = append(hints, report.MoreResolvedHint(more))
	}
	return hints
}

func attemptLess(x, y *attempt) bool {
	if x.start != y.start {
		return x.start < y.start
	}
	if c := x.client.Compare(y.client); c != 0 {
		return c < 0
	}
	return x.server.Compare(y.server) < 0
}

// WindowError says why the window asked for cannot be reported on: it ends
// before it starts, or lies wholly outside the capture. The message gives
// the capture's span. Call it after the last observation, before Finish;
// nil when there is no window or it overlaps the capture.
func (a *Analyzer) WindowError() error {
	if a.cfg.From == 0 && a.cfg.To == 0 {
		return nil
	}
	span := "the capture is empty"
	if a.seenFirst != 0 {
		f, l := time.Unix(0, a.seenFirst).UTC(), time.Unix(0, a.seenLast).UTC()
		span = fmt.Sprintf("the capture spans %s to %s (%s)", f.Format(time.RFC3339Nano), l.Format(time.RFC3339Nano), l.Sub(f))
	}
	from, to := time.Unix(0, a.cfg.From).UTC(), time.Unix(0, a.cfg.To).UTC()
	switch {
	case a.cfg.From != 0 && a.cfg.To != 0 && a.cfg.To <= a.cfg.From:
		return fmt.Errorf("the window ends (--to %s) before it starts (--from %s): %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano), span)
	case a.seenFirst == 0:
		return fmt.Errorf("the window has nothing to cover: %s", span)
	case a.cfg.From != 0 && a.cfg.From > a.seenLast:
		return fmt.Errorf("the window starts (--from %s) after the capture ends: %s", from.Format(time.RFC3339Nano), span)
	case a.cfg.To != 0 && a.cfg.To < a.seenFirst:
		return fmt.Errorf("the window ends (--to %s) before the capture starts: %s", to.Format(time.RFC3339Nano), span)
	}
	return nil
}

// byStart orders records by start time, stably, in place. It sorts indices
// and moves each record about once: records are large, and a report may
// hold tens of thousands.
func byStart[T any](rs []T, start func(*T) time.Time) []T {
	idx := make([]int, len(rs))
	keys := make([]int64, len(rs))
	sorted := true
	for i := range rs {
		idx[i] = i
		keys[i] = start(&rs[i]).UnixNano()
		if i > 0 && keys[i] < keys[i-1] {
			sorted = false
		}
	}
	if sorted {
		return rs
	}
	sort.SliceStable(idx, func(i, j int) bool { return keys[idx[i]] < keys[idx[j]] })
	// Apply the permutation in place, cycle by cycle: rs[i] = old rs[idx[i]].
	for i := range idx {
		if idx[i] < 0 || idx[i] == i {
			continue
		}
		tmp := rs[i]
		j := i
		for {
			k := idx[j]
			idx[j] = -1
			if k == i {
				rs[j] = tmp
				break
			}
			rs[j] = rs[k]
			j = k
		}
	}
	return rs
}
