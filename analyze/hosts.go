package analyze

import (
	"net/netip"
	"sort"
	"strconv"

	"github.com/egress-dev/egress/report"
)

// Blocked time is a union of intervals. The calls listed in records give
// theirs in Finish (a record's start and end are its first call's); the
// calls folded into an earlier record give theirs here, as they end, into
// bounded unions: one for the window and one per client host (the failed
// calls only, for the per-host headline).

// maxUnion bounds the disjoint intervals a union keeps; past it the two
// closest are merged (the union then over-counts by at most the gap).
const (
	maxUnion     = 1 << 16
	maxHostUnion = 256
)

// unionSet is a sorted list of disjoint intervals.
type unionSet struct {
	iv     []interval
	max    int
	approx bool // intervals were merged across a gap
}

func (u *unionSet) add(f, t int64) {
	if t <= f {
		return
	}
	iv := u.iv
	i := sort.Search(len(iv), func(i int) bool { return iv[i].to >= f })
	j := i
	for j < len(iv) && iv[j].from <= t {
		f, t = min(f, iv[j].from), max(t, iv[j].to)
		j++
	}
	switch {
	case i == j:
		iv = append(iv, interval{})
		copy(iv[i+1:], iv[i:])
		iv[i] = interval{f, t}
	default:
		iv[i] = interval{f, t}
		iv = append(iv[:i+1], iv[j:]...)
	}
	if u.max > 0 && len(iv) > u.max {
		best := 1
		for k := 2; k < len(iv); k++ {
			if iv[k].from-iv[k-1].to < iv[best].from-iv[best-1].to {
				best = k
			}
		}
		iv[best-1].to = iv[best].to
		iv = append(iv[:best], iv[best+1:]...)
		u.approx = true
	}
	u.iv = iv
}

// hostFolds is what the folded calls of one client host add to its summary.
type hostFolds struct {
	first, last int64 // earliest start, latest end (0: none)
	calls       int
	failedCalls int
	lost        unionSet // failed calls' waits inside the window
}

// maxHosts bounds the client hosts whose folded calls are followed one by
// one; past it they are counted only (stats, headline).
const maxHosts = 4096

// noteFolded records a call folded into an earlier record, for the blocked
// time of the window and of its host. Its direction is decided from what
// the capture showed so far: Finish cannot tell a folded record's calls
// apart.
func (a *Analyzer) noteFolded(src, dst netip.Addr, start, end int64, fail bool) {
	if !a.egressNow(src, dst) {
		return
	}
	f, t := a.clipToWindow(start, end)
	a.foldedBlocked.add(f, t)
	src = src.Unmap()
	h := a.hostFolds[src]
	if h == nil {
		if len(a.hostFolds) >= maxHosts {
			a.hostsUntracked = true
			return
		}
		h = &hostFolds{lost: unionSet{max: maxHostUnion}}
		a.hostFolds[src] = h
	}
	if h.first == 0 || start < h.first {
		h.first = start
	}
	h.last = max(h.last, t)
	h.calls++
	if fail {
		h.failedCalls++
		h.lost.add(f, t)
	}
}

// clipToWindow clips [start, end] to the window.
func (a *Analyzer) clipToWindow(start, end int64) (int64, int64) {
	if a.cfg.From != 0 && start < a.cfg.From {
		start = a.cfg.From
	}
	if a.cfg.To != 0 && end > a.cfg.To {
		end = a.cfg.To
	}
	return start, max(start, end)
}

// hostAcc gathers one host's summary in Finish.
type hostAcc struct {
	addr        netip.Addr
	first, last int64
	calls       int
	failed      int
	lost        unionSet
	procs       map[string]int
	culprits    map[culpritKey]*report.Culprit
	order       []culpritKey // in first-seen order
	lostNS      int64
}

// hostSummaries sums up, per local host, the calls inside [start, end]:
// the records' first calls (their start and end), and the calls folded into
// records as they ended (hostFolds). It returns the hosts that lost the most
// time (at most report.MaxHosts), how many hosts made calls and how many of
// them had failed calls.
func (a *Analyzer) hostSummaries(r *report.Report, start, end int64) (hosts []report.Host, seen, failing int) {
	accs := map[netip.Addr]*hostAcc{}
	get := func(x netip.Addr) *hostAcc {
		x = a.hostOf(x.Unmap())
		h := accs[x]
		if h == nil {
			h = &hostAcc{addr: x, procs: map[string]int{}, culprits: map[culpritKey]*report.Culprit{}}
			accs[x] = h
		}
		return h
	}
	note := func(h *hostAcc, from, to int64, fail bool, proc string) {
		f, t := from, to
		if f < start {
			f = start
		}
		if t > end {
			t = end
		}
		t = max(t, f)
		if h.first == 0 || f < h.first {
			h.first = f
		}
		h.last = max(h.last, t)
		h.calls++
		if fail {
			h.failed++
			h.lost.add(f, t)
		}
		if proc != "" {
			h.procs[proc]++
		}
	}
	culprit := func(h *hostAcc, key culpritKey, c report.Culprit) {
		if !c.Outcome.Failed() {
			return
		}
		cu := h.culprits[key]
		if cu == nil {
			cu = &c
			h.culprits[key] = cu
			h.order = append(h.order, key)
			return
		}
		cu.Calls += c.Calls
		cu.LongestMS = max(cu.LongestMS, c.LongestMS)
		cu.Inferred = cu.Inferred || c.Inferred
		if cu.Outcome != c.Outcome {
			cu.Outcome = report.Mixed
		}
	}
	for i := range r.Connections {
		c := &r.Connections[i]
		if c.Loopback || !c.SrcIP.IsValid() {
			continue
		}
		h := get(c.SrcIP)
		proc := ""
		if c.PID != nil {
			proc = report.ProcName(c.PID, c.Comm)
		}
		fail := c.Outcome.Failed()
		note(h, c.Start.UnixNano(), c.End.UnixNano(), fail, proc)
		if !fail {
			continue
		}
		dest := c.Host
		if dest == "" && c.DstIP.IsValid() {
			dest = c.DstIP.String()
		}
		dest += ":" + strconv.Itoa(int(c.DstPort))
		calls := c.Count
		if c.FoldedBy == report.FoldDestination || c.IsCatchAll() {
			calls = 1 // the others came from several hosts
		}
		if !c.IsCatchAll() { // a catch-all is never named
			culprit(h, culpritKey{false, dest}, report.Culprit{Destination: dest, Outcome: c.Outcome, Calls: calls, LongestMS: c.BlockedMS, Inferred: c.Inferred})
		}
	}
	for i := range r.Lookups {
		l := &r.Lookups[i]
		client := l.Client
		if !client.IsValid() || client.IsLoopback() {
			continue
		}
		h := get(client)
		proc := ""
		if l.PID != nil {
			proc = report.ProcName(l.PID, l.Comm)
		}
		fail := l.Outcome.Failed()
		note(h, l.Start.UnixNano(), l.End.UnixNano(), fail, proc)
		if !fail {
			continue
		}
		calls := l.Count
		if l.FoldedBy == report.FoldDestination || l.IsCatchAll() {
			calls = 1
		}
		if !l.IsCatchAll() {
			culprit(h, culpritKey{true, l.Name}, report.Culprit{Lookup: true, Destination: l.Name, Outcome: l.Outcome, Calls: calls, LongestMS: l.BlockedMS, Inferred: l.Inferred})
		}
	}
	addrs := make([]netip.Addr, 0, len(a.hostFolds))
	for x := range a.hostFolds {
		addrs = append(addrs, x)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, x := range addrs {
		hf := a.hostFolds[x]
		h := get(x)
		if h.first == 0 || hf.first < h.first {
			h.first = max(hf.first, start)
		}
		h.last = max(h.last, min(hf.last, end))
		h.calls += hf.calls
		h.failed += hf.failedCalls
		for _, iv := range hf.lost.iv {
			h.lost.add(iv.from, iv.to)
		}
	}
	// Rank the hosts by lost time first; build the full summary only for
	// those the report lists.
	all := make([]*hostAcc, 0, len(accs))
	for _, h := range accs {
		if h.failed > 0 {
			failing++
		}
		for _, iv := range h.lost.iv { // sorted and disjoint
			h.lostNS += iv.to - iv.from
		}
		all = append(all, h)
	}
	sort.Slice(all, func(i, j int) bool {
		x, y := all[i], all[j]
		switch {
		case x.lostNS != y.lostNS:
			return x.lostNS > y.lostNS
		case x.failed != y.failed:
			return x.failed > y.failed
		}
		return x.addr.Less(y.addr)
	})
	n := len(all)
	hosts = make([]report.Host, 0, min(n, report.MaxHosts))
	for _, h := range all[:min(n, report.MaxHosts)] {
		out := report.Host{Address: h.addr, ActiveMS: ms(max(h.last-h.first, 0)), LostMS: ms(h.lostNS),
			Calls: h.calls, Failed: h.failed, Culprits: topCulprits(h, 2)}
		if joined := a.hostAddrs(h.addr); len(joined) > 1 {
			for _, x := range joined {
				out.Addresses = append(out.Addresses, x)
			}
		}
		procs := make([]string, 0, len(h.procs))
		for p := range h.procs {
			procs = append(procs, p)
		}
		sort.Slice(procs, func(i, j int) bool {
			if h.procs[procs[i]] != h.procs[procs[j]] {
				return h.procs[procs[i]] > h.procs[procs[j]]
			}
			return procs[i] < procs[j]
		})
		if len(procs) > 0 {
			out.Processes = procs[:min(len(procs), 3)]
		}
		hosts = append(hosts, out)
	}
	return hosts, n, failing
}

// culpritKey is a destination of a host's failed calls.
type culpritKey struct {
	lookup bool
	dest   string
}

// topCulprits returns a host's k culprits with the longest waits (the first
// seen first among equals), without sorting them all.
func topCulprits(h *hostAcc, k int) []report.Culprit {
	top := make([]report.Culprit, 0, k)
	for _, key := range h.order {
		c := *h.culprits[key]
		i := len(top)
		for i > 0 && top[i-1].LongestMS < c.LongestMS {
			i--
		}
		if i >= k {
			continue
		}
		if len(top) < k {
			top = append(top, report.Culprit{})
		}
		copy(top[i+1:], top[i:len(top)-1])
		top[i] = c
	}
	return top
}
