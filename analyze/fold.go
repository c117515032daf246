package analyze

import (
	"net/netip"

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
//  2. folded by client host, destination, port (or query name and type) and
//     outcome (FoldClient): up to MaxFoldKeys keys, of which successes may
//     take half;
//  3. folded by destination and outcome, over client hosts
//     (FoldDestination): a quarter more keys for successes and failures
//     each; the direction is decided when the call ends, from what the
//     capture showed so far, and inbound calls are only counted;
//  4. the catch-all per outcome (FoldOutcome): no destination, the count
//     of distinct destinations it stands for.
//
// Memory is bounded by MaxRecords + MaxFoldKeys*3/2 records of each kind
// plus the catch-alls, and the order of calls alone decides the tier, so the
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
	out    uint8
	name   string
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
	i, seen := a.folded[k]
	switch {
	case n < half, fail && n < max, !seen && n < max:
		return placement{index: -1, key: k, tier: tierOwn}
	case seen:
		return placement{index: i, key: k}
	}
	keys := a.cfg.MaxFoldKeys
	budget := keys / 2
	if fail {
		budget = keys
	}
	if a.foldKeys < budget {
		return placement{index: -1, key: k, tier: tierClient}
	}
	if !a.egressNow(src, dst) {
		return placement{inbound: true}
	}
	k2 := k
	k2.tier, k2.client = tierDestination, [16]byte{}
	if i, ok := a.folded[k2]; ok {
		return placement{index: i, key: k2}
	}
	if fail && a.foldKeysDest < keys/4 || !fail && a.foldKeysDestOK < keys/4 {
		return placement{index: -1, key: k2, tier: tierDestination}
	}
	k3 := foldKey{lookup: k.lookup, tier: tierOutcome, out: k.out}
	a.noteOtherDestination(k)
	if i, ok := a.folded[k3]; ok {
		return placement{index: i, key: k3}
	}
	return placement{index: -1, key: k3, tier: tierOutcome}
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

// noteOtherDestination counts a destination joining a catch-all.
func (a *Analyzer) noteOtherDestination(k foldKey) {
	d := foldKey{lookup: k.lookup, dst: k.dst, port: k.port, qtype: k.qtype, out: k.out, name: k.name}
	if _, ok := a.otherDests[d]; ok {
		return
	}
	if len(a.otherDests) >= maxOtherDestinations {
		a.otherDestsOverflow = true
		return
	}
	a.otherDests[d] = struct{}{}
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
	// (or shares such a host's addresses) is inbound.
	return !(a.servers.has(dst) && a.initiators.has(dst))
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

// failed says whether an outcome means the caller did not get what it
// asked for.
func failed(outcome string) bool {
	switch outcome {
	case report.Timeout, report.Pending, report.Refused, report.Rejected, report.ServFail, report.NXDomain:
		return true
	}
	return false
}
