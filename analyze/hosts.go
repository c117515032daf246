package analyze

import (
	"net/netip"
	"sort"
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
