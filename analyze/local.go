package analyze

import (
	"net/netip"
	"sort"
)

// A dual-stack host has an IPv4 and an IPv6 address that the capture does
// not tie together: it may accept a login on one and call out on the other.
// The analyzer joins them when a connection from an address of one family
// goes to an address that DNS answered, just before, to a single client of
// the other family (names.go, nameAttempt): the asker is the same host. A
// pair is joined once; an address that would join two different partners is
// left alone, so a busy resolver's clients are not merged by chance.

const maxJoins = 1 << 16

type joinTable struct {
	partner map[netip.Addr]netip.Addr
	bad     map[netip.Addr]bool
}

func newJoinTable() joinTable {
	return joinTable{partner: map[netip.Addr]netip.Addr{}, bad: map[netip.Addr]bool{}}
}

func (a *Analyzer) join(x, y netip.Addr) {
	x, y = x.Unmap(), y.Unmap()
	j := &a.joins
	if x == y || j.bad[x] || j.bad[y] {
		return
	}
	px, okx := j.partner[x]
	py, oky := j.partner[y]
	switch {
	case okx && px == y:
		return
	case okx || oky:
		// A second partner: the pairing is not sure; undo it.
		for _, z := range []netip.Addr{x, y, px, py} {
			if z.IsValid() {
				delete(j.partner, z)
				if len(j.bad) < maxJoins {
					j.bad[z] = true
				}
			}
		}
		return
	case len(j.partner) >= maxJoins:
		return
	}
	j.partner[x], j.partner[y] = y, x
}

// hostOf returns the address that names the host of x: the lower of a
// joined pair, x itself otherwise.
func (a *Analyzer) hostOf(x netip.Addr) netip.Addr {
	x = x.Unmap()
	if p, ok := a.joins.partner[x]; ok && p.Less(x) {
		return p
	}
	return x
}

// hostAddrs lists the addresses of host x (x and its joined partner).
func (a *Analyzer) hostAddrs(x netip.Addr) []netip.Addr {
	x = x.Unmap()
	out := []netip.Addr{x}
	if p, ok := a.joins.partner[x]; ok {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// inferredLocal returns the addresses of the hosts that both accept
// connections and make calls (TCP connections or DNS lookups), the
// addresses of a dual-stack host counted as one host.
func (a *Analyzer) inferredLocal() map[netip.Addr]bool {
	accepts, calls := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for x := range a.servers.m {
		accepts[a.hostOf(x)] = true
	}
	for x := range a.initiators.m {
		calls[a.hostOf(x)] = true
	}
	// DNS clients, from the lookup records (a folded record keeps its
	// first call's client): no cost per query.
	for i := range a.lks {
		if x := a.lks[i].Client; x.IsValid() {
			calls[a.hostOf(x)] = true
		}
	}
	set := map[netip.Addr]bool{}
	for h := range accepts {
		if calls[h] {
			for _, x := range a.hostAddrs(h) {
				set[x] = true
			}
		}
	}
	return set
}
