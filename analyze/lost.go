package analyze

import (
	"math"
	"sort"
	"time"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// Lost time: of the time failed calls kept the app waiting, the part in
// which the app had nothing else to do. Live sources (watch, run) say when
// the watched threads ran (event.Activity, the scheduler's view): time is
// lost while a failed call is outstanding and none of them runs. A capture
// has no such view: there a failed call's wait counts until its host's
// next own action (as next-action ends a wait), an upper bound.

// maxActivity bounds the scheduler changes kept; past it, the shortest
// idle spells are counted as running (stats.activity_coarsened_ms).
const maxActivity = 1 << 18

type activityLog struct {
	edges     []event.Activity
	seen      bool
	unsorted  bool  // an edge came before the one ahead of it
	coarsened int64 // idle spells shorter than this were dropped
}

// Activity observes the scheduler's view of the watched processes: from
// e.Time on, some thread of theirs runs (or waits for a CPU), or none does.
// The order of calls does not matter; sources send the state at attach
// first.
func (a *Analyzer) Activity(e *event.Activity) {
	a.act.seen = true
	a.stats.ActivityChanges++
	if len(a.act.edges) >= maxActivity {
		a.act.coarsen()
	}
	if n := len(a.act.edges); n > 0 && e.Time < a.act.edges[n-1].Time {
		a.act.unsorted = true
	}
	a.act.edges = append(a.act.edges, *e)
}

// sort orders the edges by time; live sources deliver them in order (the
// pipeline's reorder step), so it is rarely work.
func (l *activityLog) sort() {
	if !l.unsorted {
		return
	}
	l.unsorted = false
	sort.SliceStable(l.edges, func(i, j int) bool { return l.edges[i].Time < l.edges[j].Time })
}

// coarsen drops idle spells shorter than a doubling threshold until a
// quarter of the log is free.
func (l *activityLog) coarsen() {
	l.sort()
	g := max(l.coarsened*2, int64(time.Millisecond))
	for round := 0; ; round++ {
		if g <= 0 || g > math.MaxInt64/2 || round > 64 {
			g = math.MaxInt64 // hostile times: every idle spell goes
		}
		out := l.edges[:0]
		for i := 0; i < len(l.edges); i++ {
			e := l.edges[i]
			if !e.Running && i+1 < len(l.edges) && l.edges[i+1].Running && (g == math.MaxInt64 || l.edges[i+1].Time-e.Time < g) {
				i++ // a short sleep between two runs: counted as running
				continue
			}
			if len(out) > 0 && out[len(out)-1].Running == e.Running {
				continue
			}
			out = append(out, e)
		}
		l.edges = out
		l.coarsened = g
		if len(l.edges) < maxActivity*3/4 || g == math.MaxInt64 {
			return
		}
		g *= 2
	}
}

// idle returns the spells inside [start, end] in which no watched thread
// ran, sorted and disjoint. Before the first change the processes count as
// running: nothing says they waited.
func (l *activityLog) idle(start, end int64) []interval {
	l.sort()
	var out []interval
	running := true
	var since int64
	for _, e := range l.edges {
		if e.Running == running {
			continue
		}
		if running {
			since = e.Time
		} else if f, t := max(since, start), min(e.Time, end); t > f {
			out = append(out, interval{f, t})
		}
		running = e.Running
	}
	if !running {
		if f := max(since, start); end > f {
			out = append(out, interval{f, end})
		}
	}
	return out
}

// lostSpan is what of a call can be lost: [from, to] for the scheduler
// view, [from, capTo] from a capture alone. ok is false for calls that did
// not fail, loopback calls and folded repeats.
type lostSpan struct {
	from, to, capTo int64
	ok              bool
}

func spanOf(ok bool, start, end, busyAt int64) lostSpan {
	capTo := end
	if busyAt > start && busyAt < end {
		capTo = busyAt
	}
	return lostSpan{from: start, to: end, capTo: capTo, ok: ok}
}

// idleIn is how long, within [from, to], no watched thread ran: the
// overlap of the span with idle(from, to), found by binary search (a
// record settles while later changes keep coming).
func (l *activityLog) idleIn(from, to int64) int64 {
	l.sort()
	i := sort.Search(len(l.edges), func(k int) bool { return l.edges[k].Time > from })
	running := true // before the first change: nothing says they waited
	if i > 0 {
		running = l.edges[i-1].Running
	}
	var total int64
	t := from
	for ; i < len(l.edges) && l.edges[i].Time < to; i++ {
		if !running {
			total += l.edges[i].Time - t
		}
		running, t = l.edges[i].Running, l.edges[i].Time
	}
	if !running {
		total += to - t
	}
	return total
}

// settledLost is the lost time of a record as it settles (for
// Config.Settled), as Finish will compute it from what has been observed
// so far: the window's end, when not yet known, does not clip it.
func (a *Analyzer) settledLost(s lostSpan) float64 {
	if !s.ok {
		return 0
	}
	start := a.first
	if a.cfg.From != 0 {
		start = a.cfg.From
	}
	end := int64(math.MaxInt64)
	if a.cfg.To != 0 {
		end = a.cfg.To
	}
	to := s.capTo
	if a.act.seen {
		to = s.to
	}
	from, to := max(s.from, start), min(to, end)
	if to <= from {
		return 0
	}
	if a.act.seen {
		return ms(a.act.idleIn(from, to))
	}
	return ms(to - from)
}

// lostTime sets the lost time of each kept record and returns the
// window's, with its basis. conns and lks are the kept records, cs and ls
// their spans.
func (a *Analyzer) lostTime(conns []report.Connection, cs []lostSpan, lks []report.Lookup, ls []lostSpan, start, end int64) (float64, string) {
	basis := report.LostCapture
	var idle []interval
	if a.act.seen {
		basis = report.LostScheduler
		idle = a.act.idle(start, end)
	}
	a.stats.ActivityCoarsenedMS = ms(a.act.coarsened)
	var all []interval
	// folded is a record of several calls: its span is its first call's,
	// kept out of the window's union as blocked_ms keeps it out.
	one := func(s lostSpan, folded bool) float64 {
		if !s.ok {
			return 0
		}
		to := s.capTo
		if basis == report.LostScheduler {
			to = s.to
		}
		iv := interval{max(s.from, start), min(to, end)}
		if iv.to <= iv.from {
			return 0
		}
		if !folded {
			all = append(all, iv)
		}
		if basis == report.LostScheduler {
			// idle is sorted: start at the first spell that ends after iv
			// starts (many calls, many spells).
			j := sort.Search(len(idle), func(k int) bool { return idle[k].to > iv.from })
			return ms(overlap([]interval{iv}, idle[j:]))
		}
		return ms(iv.to - iv.from)
	}
	for i := range conns {
		conns[i].LostMS = one(cs[i], conns[i].Count > 1)
	}
	for i := range lks {
		lks[i].LostMS = one(ls[i], lks[i].Count > 1)
	}
	u := merge(all)
	if basis == report.LostScheduler {
		return ms(overlap(u, idle)), basis
	}
	var total int64
	for _, x := range u {
		total += x.to - x.from
	}
	return ms(total), basis
}

// merge sorts intervals and joins those that overlap.
func merge(iv []interval) []interval {
	sort.Slice(iv, func(i, j int) bool { return iv[i].from < iv[j].from })
	var out []interval
	for _, x := range iv {
		if n := len(out); n > 0 && x.from <= out[n-1].to {
			out[n-1].to = max(out[n-1].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}

// overlap is the total length of x ∩ y, both sorted and disjoint.
func overlap(x, y []interval) int64 {
	var total int64
	for i, j := 0, 0; i < len(x) && j < len(y); {
		f, t := max(x[i].from, y[j].from), min(x[i].to, y[j].to)
		if t > f {
			total += t - f
		}
		if x[i].to < y[j].to {
			i++
		} else {
			j++
		}
	}
	return total
}

// moveSpans keeps the records' lost spans beside them when a squeeze
// (fold.go) moves records: index i went to to[i] (-1: merged or dropped).
// A catch-all made there holds successes only: no span.
func moveSpans(sp []lostSpan, to []int, n int) []lostSpan {
	out := make([]lostSpan, n)
	for i, j := range to {
		if j >= 0 && i < len(sp) {
			out[j] = sp[i]
		}
	}
	return out
}
