package analyze

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/egress-dev/egress/report"
)

// Where a finished call goes is decided before it joins a record: whether it
// is inside the window (finishAttempt, finishLookup), then which record.
// Records are per client host and destination at every tier but the last,
// so the direction (egress or inbound), decided in Finish from the whole
// capture's facts, is the same for every call of a record.
//
// The tiers, in order (docs/analysis.md, "Folding"):
//
//  1. a record of its own: the first MaxRecords/2 calls of each kind, and
//     failed calls up to MaxRecords: successes are squeezed first, a
//     successful call past MaxRecords/2 that repeats an earlier record's key
//     is folded into it;
//  2. failures: folded by client host, destination, port (or query name
//     and type) and outcome (FoldClient): up to MaxFoldKeys keys (1.5 times
//     that once successes are squeezed);
//  3. folded by destination and outcome, over client hosts
//     (FoldDestination): MaxFoldKeys/2 keys for failures past tier 2, and
//     as many for successes past the record limit; the direction is
//     decided when the call ends, from what the capture showed so far, and
//     inbound calls are only counted;
//  4. the catch-all per outcome (FoldOutcome): no destination, the count
//     of distinct destinations it stands for.
//
// Memory is bounded by 2*MaxRecords + 2.5*MaxFoldKeys records in all plus
// the catch-alls, and the order of calls alone decides the tier, so the
// same input gives the same report.

// tier is how far a record is folded.
type tier uint8

const (
	tierOwn         tier = iota // a call of its own (repeats may fold into it)
	tierClient                  // report.FoldClient
	tierDestination             // report.FoldDestination
	tierOutcome                 // report.FoldOutcome: the catch-all
)

// foldedBy is the report's name of what a folded record's calls share.
func (t tier) foldedBy() string {
	switch t {
	case tierDestination:
		return report.FoldDestination
	case tierOutcome:
		return report.FoldOutcome
	}
	return report.FoldClient
}

// foldKey says which calls are alike enough to fold together. The addresses
// are plain bytes and the outcome a code, so hashing it costs little.
type foldKey struct {
	lookup bool
	tier   tier
	client [16]byte
	dst    [16]byte
	port   uint16
	qtype  uint16
	out    report.Outcome
	// name is the name's FNV-1a hash (nameKey): with no pointer in the
	// key the collector never scans the fold map, and a key hashes as
	// plain memory. Two names of one hash would share a record; among
	// the tens of thousands of names of a busy capture that is about as
	// likely as 1 in 10^10.
	name uint64
}

// nameKey is the FNV-1a hash of a name, for foldKey.
func nameKey(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// placement is where a call goes: a new record (index < 0) with this key
// and tier, or the record at index.
type placement struct {
	index   int
	key     foldKey
	tier    tier
	inbound bool // tier 3 and up: decided inbound now; count, do not record
}

// place decides the record of a finished call whose own (tier 2) key is k.
// n is how many records of its kind exist, fail whether it failed, and
// src, dst its ends (for the direction at tier 3).
func (a *Analyzer) place(n int, k foldKey, fail bool, src, dst netip.Addr) placement {
	max, half := a.cfg.MaxRecords, a.cfg.MaxRecords/2
	k.tier = tierOwn
	if a.squeezed && !fail {
		return a.catchAll(k, src, dst)
	}
	if n < half || fail && n < max {
		return placement{index: -1, key: k, tier: tierOwn} // a record of its own, seen or not
	}
	i, seen := a.folded[k]
	switch {
	case !seen && n < max:
		return placement{index: -1, key: k, tier: tierOwn}
	case seen:
		return placement{index: i, key: k}
	}
	keys := a.cfg.MaxFoldKeys
	budget := keys
	if a.squeezed {
		budget = keys + keys/2 // with the room the successes gave back
	}
	// Successes past the record limit fold over client hosts at once: a
	// success's client matters less than a failure's, and records cost.
	if fail && a.foldKeys < budget {
		return placement{index: -1, key: k, tier: tierClient}
	}
	if fail && !a.squeezed {
		// The failures need the room successes hold: summarise every
		// success, and give failures the keys back.
		a.squeeze()
		return a.place(n, k, fail, src, dst)
	}
	if !a.egressNow(src, dst) {
		return placement{inbound: true}
	}
	k2 := k
	k2.tier, k2.client = tierDestination, [16]byte{}
	if i, ok := a.folded[k2]; ok {
		return placement{index: i, key: k2}
	}
	if fail && a.foldKeysDest < keys/2 || !fail && a.foldKeysDestOK < keys/2 {
		return placement{index: -1, key: k2, tier: tierDestination}
	}
	return a.otherPlace(k)
}

// catchAll places a call in its outcome's catch-all.
func (a *Analyzer) catchAll(k foldKey, src, dst netip.Addr) placement {
	if !a.egressNow(src, dst) {
		return placement{inbound: true}
	}
	return a.otherPlace(k)
}

// otherPlace places a call whose direction is decided in the catch-all.
func (a *Analyzer) otherPlace(k foldKey) placement {
	k3 := foldKey{lookup: k.lookup, tier: tierOutcome, out: k.out}
	a.noteOtherDestination(k)
	if i := a.catchAllIndex(k.lookup, k.out); i >= 0 {
		return placement{index: i, key: k3}
	}
	return placement{index: -1, key: k3, tier: tierOutcome}
}

// squeeze makes room for failures once they have used their fold keys:
// every successful record (but loopback ones) joins its outcome's
// catch-all, its key is freed, and from then on successes go to their
// catch-all at once. Failures are never squeezed: they keep their records
// and their destinations. A success record's first call gives its blocked
// time to the folded unions, as folded calls do; a record decided inbound
// now is only counted.
func (a *Analyzer) squeeze() {
	a.squeezed = true
	connMap := make([]int, len(a.conns))
	kept := 0
	connCatch := map[report.Outcome]int{}
	for i := range a.conns {
		c := a.conns[i]
		code := c.Outcome
		switch {
		case c.Outcome.Failed() || c.Loopback:
			if c.FoldedBy == report.FoldOutcome {
				connCatch[code] = kept
			}
			connMap[i] = kept
			a.conns[kept] = c
			kept++
			continue
		case c.FoldedBy == report.FoldOutcome:
			// An earlier catch-all: its calls were noted when they joined.
			if j, ok := connCatch[code]; ok {
				connMap[i] = -1
				mergeConn(&a.conns[j], &c, recordSum(c.BlockedMS, c.BlockedSumMS, c.Count))
				continue
			}
			connMap[i] = kept
			connCatch[code] = kept
			a.conns[kept] = c
			kept++
			continue
		}
		connMap[i] = -1
		if c.FoldedBy != report.FoldDestination && !a.egressNow(c.SrcIP, c.DstIP) {
			a.stats.InboundAttempts += uint64(c.Count)
			continue
		}
		a.noteOtherDestination(foldKey{client: c.SrcIP.As16(), dst: c.DstIP.As16(), port: c.DstPort, name: nameKey(c.Host), out: code})
		a.noteFolded(c.SrcIP, c.DstIP, c.Start.UnixNano(), c.End.UnixNano(), false)
		sum := c.BlockedSumMS
		if c.Count == 1 {
			sum = c.BlockedMS
		}
		a.stats.RecordsDropped += uint64(c.Count)
		j, ok := connCatch[code]
		if !ok {
			c.Host, c.NameSource, c.DstIP, c.DstPort = OtherDestinations, report.SourceNone, netip.Addr{}, 0
			c.FoldedBy, c.BlockedSumMS = report.FoldOutcome, sum
			connCatch[code] = kept
			a.conns[kept] = c
			kept++
			continue
		}
		a.stats.RecordsFolded++ // its first call is folded now too
		mergeConn(&a.conns[j], &c, sum)
	}
	clear(a.conns[kept:])
	a.conns = a.conns[:kept]
	a.connSp = moveSpans(a.connSp, connMap, kept)

	lkMap := make([]int, len(a.lks))
	kept = 0
	lkCatch := map[report.Outcome]int{}
	for i := range a.lks {
		l := a.lks[i]
		code := l.Outcome
		switch {
		case l.Outcome.Failed():
			if l.FoldedBy == report.FoldOutcome {
				lkCatch[code] = kept
			}
			lkMap[i] = kept
			a.lks[kept] = l
			kept++
			continue
		case l.FoldedBy == report.FoldOutcome:
			if j, ok := lkCatch[code]; ok {
				lkMap[i] = -1
				mergeLookup(&a.lks[j], &l, recordSum(l.BlockedMS, l.BlockedSumMS, l.Count))
				continue
			}
			lkMap[i] = kept
			lkCatch[code] = kept
			a.lks[kept] = l
			kept++
			continue
		}
		lkMap[i] = -1
		client, server := l.Client, l.Server
		if l.FoldedBy != report.FoldDestination && !a.egressNow(client, server.Addr()) {
			continue // a lookup this host answered
		}
		a.noteOtherDestination(foldKey{lookup: true, client: client.As16(), dst: server.Addr().As16(), port: server.Port(), name: nameKey(l.Name), out: code})
		a.noteFolded(client, server.Addr(), l.Start.UnixNano(), l.End.UnixNano(), false)
		sum := l.BlockedSumMS
		if l.Count == 1 {
			sum = l.BlockedMS
		}
		a.stats.RecordsDropped += uint64(l.Count)
		j, ok := lkCatch[code]
		if !ok {
			l.Name, l.QType, l.Server, l.Answers, l.CNAMEs = OtherDestinations, "", netip.AddrPort{}, []string{}, nil
			l.FoldedBy, l.BlockedSumMS = report.FoldOutcome, sum
			lkCatch[code] = kept
			a.lks[kept] = l
			kept++
			continue
		}
		a.stats.RecordsFolded++
		mergeLookup(&a.lks[j], &l, sum)
	}
	clear(a.lks[kept:])
	a.lks = a.lks[:kept]
	a.lkSp = moveSpans(a.lkSp, lkMap, kept)
	answers := a.answers[:0]
	for _, al := range a.answers {
		if j := lkMap[al.index]; j >= 0 {
			al.index = j
			answers = append(answers, al)
		}
	}
	a.answers = answers

	// Keys: failures' keep their (moved) records; successes' are gone, but
	// for the catch-alls.
	a.foldKeys, a.foldKeysDest, a.foldKeysDestOK = 0, 0, 0
	for k, i := range a.folded {
		m := connMap
		if k.lookup {
			m = lkMap
		}
		if k.tier == tierOutcome || m[i] < 0 {
			delete(a.folded, k)
			continue
		}
		a.folded[k] = m[i]
		switch k.tier {
		case tierClient:
			a.foldKeys++
		case tierDestination:
			a.foldKeysDest++
		}
	}
	a.catchAlls = [2][256]int{}
	for code, i := range connCatch {
		a.folded[foldKey{tier: tierOutcome, out: code}] = i
		a.setCatchAll(false, code, i)
	}
	for code, i := range lkCatch {
		a.folded[foldKey{lookup: true, tier: tierOutcome, out: code}] = i
		a.setCatchAll(true, code, i)
	}
}

// catchAllIndex is the record index of the catch-all of an outcome, or -1;
// an array, not the fold map: past every bound every call looks it up.
func (a *Analyzer) catchAllIndex(lookup bool, out report.Outcome) int {
	kind := 0
	if lookup {
		kind = 1
	}
	return a.catchAlls[kind][out] - 1
}

func (a *Analyzer) setCatchAll(lookup bool, out report.Outcome, i int) {
	kind := 0
	if lookup {
		kind = 1
	}
	a.catchAlls[kind][out] = i + 1
}

// register remembers the key of a new record at index i. Keys of records of
// their own are kept too (bounded by MaxRecords), so that repeats of them
// can fold into them.
func (a *Analyzer) register(p placement, i int, fail bool) {
	if _, ok := a.folded[p.key]; ok {
		return
	}
	a.folded[p.key] = i
	switch p.tier {
	case tierOutcome:
		a.setCatchAll(p.key.lookup, p.key.out, i)
	case tierClient:
		a.foldKeys++
	case tierDestination:
		if fail {
			a.foldKeysDest++
		} else {
			a.foldKeysDestOK++
		}
	}
}

// maxOtherDestinations bounds the set that counts the catch-alls' distinct
// destinations; past it the count is a lower bound (stats say so).
const maxOtherDestinations = 1 << 16

// noteOtherDestination counts a destination joining a catch-all: a
// connection's address and port, a lookup's name. The set holds 64-bit
// FNV-style fingerprints (a collision among 65,536 destinations is about as
// likely as 1 in 10^10), small enough that a busy capture's catch-alls do
// not crowd the heap.
func (a *Analyzer) noteOtherDestination(k foldKey) {
	h := uint64(14695981039346656037) ^ uint64(k.out)
	if k.lookup {
		h = (h ^ 1) * 1099511628211
		h = (h ^ k.name) * 1099511628211
		h ^= h >> 29
	} else {
		// Eight bytes at a time: the address halves and the port.
		for _, w := range [3]uint64{binary.LittleEndian.Uint64(k.dst[:8]), binary.LittleEndian.Uint64(k.dst[8:]), uint64(k.port)} {
			h = (h ^ w) * 1099511628211
			h ^= h >> 29
		}
	}
	if _, ok := a.otherDests[h]; ok {
		return
	}
	if len(a.otherDests) >= maxOtherDestinations {
		a.otherDestsOverflow = true
		return
	}
	a.otherDests[h] = struct{}{}
	if k.lookup {
		a.otherLookupDests[k.out]++
	} else {
		a.otherConnDests[k.out]++
	}
}

// egressNow decides a call's direction from what the capture showed so far:
// used only past the fold table (tier 3), where records hold calls of several
// client hosts and Finish could not tell them apart.
func (a *Analyzer) egressNow(src, dst netip.Addr) bool {
	switch {
	case a.cfg.LocalAny:
		return true
	case len(a.cfg.Local) > 0:
		return inPrefixes(a.cfg.Local, src)
	case len(a.dirOut.m) > 0:
		return a.dirOut.has(src)
	}
	// Inferred: a call to a host that both accepts and makes connections
	// is inbound. Servers are rarely initiators: look that up first.
	return !(a.initiators.has(dst) && a.servers.has(dst))
}

func inPrefixes(ps []netip.Prefix, x netip.Addr) bool {
	x = x.Unmap()
	for _, p := range ps {
		if p.Contains(x) {
			return true
		}
	}
	return false
}

// recordSum is the sum of a record's waits.
func recordSum(blocked, sum float64, count int) float64 {
	if count > 1 {
		return sum
	}
	return blocked
}

// mergeConn adds record c, whose waits sum to sum, to the catch-all f.
func mergeConn(f, c *report.Connection, sum float64) {
	if f.Count == 1 {
		f.BlockedSumMS = f.BlockedMS
	}
	f.Count += c.Count
	f.Attempts += c.Attempts
	f.SynAcks += c.SynAcks
	f.RSTs += c.RSTs
	f.BlockedMS = max(f.BlockedMS, c.BlockedMS)
	f.BlockedSumMS += sum
	f.Inferred = f.Inferred || c.Inferred
	f.Start = minTime(f.Start, c.Start)
}

func mergeLookup(f, l *report.Lookup, sum float64) {
	if f.Count == 1 {
		f.BlockedSumMS = f.BlockedMS
	}
	f.Count += l.Count
	f.Attempts += l.Attempts
	f.BlockedMS = max(f.BlockedMS, l.BlockedMS)
	f.BlockedSumMS += sum
	f.Inferred = f.Inferred || l.Inferred
	f.Start = minTime(f.Start, l.Start)
}

func minTime(x, y time.Time) time.Time {
	if y.Before(x) {
		return y
	}
	return x
}
