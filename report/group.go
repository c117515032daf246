package report

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	"github.com/olekukonko/tablewriter"
)

// The grouped tables of a busy capture: failed calls first, one row per
// destination (a connection's host or address and port, a lookup's name),
// the ones that cost the longest waits first; successful calls summed up in
// one line. Folded records count by their Count.

// destGroup is the failed calls to one destination.
type destGroup struct {
	dest     string
	outcomes map[Outcome]int
	calls    int
	tries    int
	clients  map[netip.Addr]bool
	longest  float64
	sum      float64
	inferred bool
	catchAll int // destinations a catch-all stands for
}

func (g *destGroup) add(outcome Outcome, client netip.Addr, count, tries int, longest, sum float64, inferred bool) {
	g.outcomes[outcome] += count
	g.calls += count
	g.tries += tries
	if client.IsValid() && len(g.clients) <= 1000 {
		g.clients[client] = true
	}
	g.longest = max(g.longest, longest)
	g.sum += sum
	g.inferred = g.inferred || inferred
}

func (g *destGroup) outcomeText() string {
	keys := make([]Outcome, 0, len(g.outcomes))
	for k := range g.outcomes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if g.outcomes[keys[i]] != g.outcomes[keys[j]] {
			return g.outcomes[keys[i]] > g.outcomes[keys[j]]
		}
		return keys[i].String() < keys[j].String()
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, g.outcomes[k])
	}
	return strings.Join(parts, ", ")
}

func (g *destGroup) clientsText() string {
	if len(g.clients) > 1000 {
		return "1000+"
	}
	return fmt.Sprint(len(g.clients))
}

func sortGroups(gs []*destGroup) {
	sort.SliceStable(gs, func(i, j int) bool {
		x, y := gs[i], gs[j]
		if (x.catchAll > 0) != (y.catchAll > 0) {
			return y.catchAll > 0 // the catch-all last
		}
		if x.sum != y.sum {
			return x.sum > y.sum
		}
		return x.dest < y.dest
	})
}

// sumOf is a record's total wait: the sum of a folded record's waits.
func sumOf(blocked, sum float64, count int) float64 {
	if count > 1 {
		return sum
	}
	return blocked
}

// connGroups groups the failed connections by destination and counts the
// successful ones and their destinations.
func connGroups(cs []Connection) (groups []*destGroup, okCalls, okDests int) {
	byDest := map[string]*destGroup{}
	okSet, okOther := map[string]bool{}, 0
	for i := range cs {
		c := &cs[i]
		dest := joinHostPort(c.DstIP, c.DstPort)
		if c.Host != "" {
			dest = fmt.Sprintf("%s (%s)", c.Host, dest)
		}
		if c.IsCatchAll() {
			dest = fmt.Sprintf("%d other destinations", c.Destinations)
		}
		if quiet(c.Outcome) || c.Outcome == Aborted {
			okCalls += c.Count
			if c.IsCatchAll() {
				okOther += c.Destinations
			} else {
				okSet[dest] = true
			}
			continue
		}
		g := byDest[dest]
		if g == nil {
			g = &destGroup{dest: dest, outcomes: map[Outcome]int{}, clients: map[netip.Addr]bool{}}
			byDest[dest] = g
			groups = append(groups, g)
		}
		if c.IsCatchAll() {
			g.catchAll += c.Destinations
		}
		g.add(c.Outcome, c.SrcIP, c.Count, c.Attempts, c.BlockedMS, sumOf(c.BlockedMS, c.BlockedSumMS, c.Count), c.Inferred)
	}
	sortGroups(groups)
	return groups, okCalls, len(okSet) + okOther
}

// lookupGroups is connGroups for lookups, by name.
func lookupGroups(ls []Lookup) (groups []*destGroup, okCalls, okNames int) {
	byName := map[string]*destGroup{}
	okSet, okOther := map[string]bool{}, 0
	for i := range ls {
		l := &ls[i]
		name := l.Name
		if l.IsCatchAll() {
			name = fmt.Sprintf("%d other names", l.Destinations)
		}
		if quiet(l.Outcome) || l.Outcome == NoData {
			okCalls += l.Count
			if l.IsCatchAll() {
				okOther += l.Destinations
			} else {
				okSet[name] = true
			}
			continue
		}
		g := byName[name]
		if g == nil {
			g = &destGroup{dest: name, outcomes: map[Outcome]int{}, clients: map[netip.Addr]bool{}}
			byName[name] = g
			groups = append(groups, g)
		}
		if l.IsCatchAll() {
			g.catchAll += l.Destinations
		}
		g.add(l.Outcome, l.Client, l.Count, l.Attempts, l.BlockedMS, sumOf(l.BlockedMS, l.BlockedSumMS, l.Count), l.Inferred)
	}
	sortGroups(groups)
	return groups, okCalls, len(okSet) + okOther
}

func groupedConnTable(w io.Writer, cs []Connection) error {
	groups, okCalls, okDests := connGroups(cs)
	if err := groupTable(w, groups, "failed destination", "calls", "syns"); err != nil {
		return err
	}
	if okCalls > 0 {
		if _, err := fmt.Fprintf(w, "  and %s that succeeded (established, or answered and then aborted), to %s (--all lists them)\n",
			countText(okCalls, "call"), countText(okDests, "destination")); err != nil {
			return err
		}
	}
	return knownPhoneHomes(w, cs)
}

func groupedLookupTable(w io.Writer, ls []Lookup) error {
	groups, okCalls, okNames := lookupGroups(ls)
	if err := groupTable(w, groups, "failed name", "lookups", "queries"); err != nil {
		return err
	}
	if okCalls > 0 {
		_, err := fmt.Fprintf(w, "  and %s answered (with or without data), of %s (--all lists them)\n",
			countText(okCalls, "lookup"), countText(okNames, "name"))
		return err
	}
	return nil
}

func groupTable(w io.Writer, groups []*destGroup, what, calls, tries string) error {
	if len(groups) == 0 {
		return nil
	}
	t := tablewriter.NewWriter(w)
	t.Header(what, "clients", calls, tries, "outcome", "longest wait", "total wait")
	for _, g := range groups {
		if err := t.Append(Safe(g.dest), g.clientsText(), fmt.Sprint(g.calls), fmt.Sprint(g.tries), g.outcomeText(),
			tilde(g.inferred)+durText(g.longest), durText(g.sum)); err != nil {
			return err
		}
	}
	return t.Render()
}

func countText(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// callsText is a section's count: "12" records, or "12 records, 3,456
// calls" when records were folded.
func callsText(records, calls int) string {
	if calls == records {
		return fmt.Sprint(records)
	}
	return fmt.Sprintf("%d records, %d calls", records, calls)
}

func connCalls(cs []Connection) int {
	n := 0
	for _, c := range cs {
		n += c.Count
	}
	return n
}

func lookupCalls(ls []Lookup) int {
	n := 0
	for _, l := range ls {
		n += l.Count
	}
	return n
}
