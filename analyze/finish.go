package analyze

import (
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
	all := make([]*flow, 0, len(a.flows))
	for _, f := range a.flows {
		all = append(all, f)
	}
	a.finishFlows(all, end)
	socks := make([]*attempt, 0, len(a.sockets))
	for c, at := range a.sockets {
		socks = append(socks, at)
		delete(a.sockets, c)
	}
	sort.Slice(socks, func(i, j int) bool { return attemptLess(socks[i], socks[j]) })
	for _, at := range socks {
		a.finishAttempt(at, end)
	}
	a.finishLookups(func(*lookup) bool { return true }, end, false)

	r := &report.Report{
		SchemaVersion: report.SchemaVersion,
		Connections:   []report.Connection{},
		Lookups:       []report.Lookup{},
		Hints:         []report.Hint{},
		Errors:        []string{},
		Stats:         a.stats,
	}
	if a.first != 0 || a.cfg.From != 0 {
		r.Window.Start = time.Unix(0, start).UTC()
		r.Window.End = time.Unix(0, end).UTC()
		r.Window.Duration = dur(end - start)
	}
	isEgress := a.egressFunc(&r.Local)

	for _, c := range a.conns {
		switch {
		case c.Loopback || isEgress(c.SrcIP, c.DstIP):
			r.Connections = append(r.Connections, c)
		default:
			r.Stats.InboundAttempts++
		}
	}
	keepLookup := make([]bool, len(a.lks))
	for i, l := range a.lks {
		// Server is invalid for the "other destinations" record.
		if l.Client.IsValid() && (isEgress(l.Client, l.Server.Addr()) || l.Client.IsLoopback()) {
			keepLookup[i] = true
			r.Lookups = append(r.Lookups, l)
		}
	}
	sort.SliceStable(r.Connections, func(i, j int) bool { return r.Connections[i].Start.Before(r.Connections[j].Start) })
	sort.SliceStable(r.Lookups, func(i, j int) bool { return r.Lookups[i].Start.Before(r.Lookups[j].Start) })

	r.Window.Blocked = a.blocked(r, start, end)
	r.Headline = report.Headline(r)
	r.Hints = a.hints(keepLookup)
	return r
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
		for x := range a.initiators.m {
			if a.servers.has(x) {
				set[x.Unmap()] = true
			}
		}
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
func (a *Analyzer) blocked(r *report.Report, start, end int64) report.Duration {
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
	for _, c := range r.Connections {
		if !c.Loopback && c.Count == 1 {
			clip(c.Start, c.End)
		}
	}
	for _, l := range r.Lookups {
		if l.Count == 1 {
			clip(l.Start, l.End)
		}
	}
	return dur(union(iv))
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
		hints = append(hints, report.ResolvedNotContacted(l.Name, l.Answers))
	}
	if more > 0 {
		hints = append(hints, report.MoreResolvedNotContacted(more))
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
