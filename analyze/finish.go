package analyze

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
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
		r.Window.DurationMS = ms(end - start)
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

	r.Window.BlockedMS = a.blocked(r, start, end)
	r.Headline = headline(r)
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

// culprit is a failed call named in the headline.
type culprit struct {
	lookup   bool
	syns     int      // connections: SYNs of all its calls
	inferred bool     // some give-up time is inferred
	qtypes   []string // lookups: the query types that failed
	n        int      // calls behind this culprit (lookups of one name merge)
	host     string
	port     string
	blocked  float64
	outcome  report.Outcome // 0 when its calls ended differently
	detail   string         // "3 SYNs, ~3.0 s"
	proc     string         // "shopapp[4242]" where the process is known
}

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

// failed says whether an outcome means the caller did not get what it
// asked for.
func failed(outcome report.Outcome) bool {
	switch outcome {
	case report.Timeout, report.Pending, report.Refused, report.Rejected, report.ServFail, report.NXDomain:
		return true
	}
	return false
}

// headline is the one line that answers "why was it slow": how much of the
// window was blocked, and by which failed calls.
func headline(r *report.Report) string {
	w := r.Window
	if w.DurationMS <= 0 && len(r.Connections) == 0 && len(r.Lookups) == 0 {
		return "no outbound connections or lookups seen"
	}
	var cs []culprit
	var failedBlocked []interval
	byDest := map[string]int{}
	for _, c := range r.Connections {
		if c.Loopback || !failed(c.Outcome) {
			continue
		}
		host := c.Host
		if host == "" {
			host = c.DstIP.String()
		}
		failedBlocked = append(failedBlocked, interval{c.Start.UnixNano(), c.End.UnixNano()})
		// Calls to one destination are named once: "host:80 (9 calls, 99
		// SYNs, up to ~68.4 s)".
		key := host + "\x00" + fmt.Sprint(c.DstPort)
		if i, ok := byDest[key]; ok {
			d := &cs[i]
			d.n += c.Count
			d.syns += c.Attempts
			d.inferred = d.inferred || c.Inferred
			d.blocked = max(d.blocked, c.BlockedMS)
			d.detail = fmt.Sprintf("%d calls, %s, up to %s%s", d.n, plural(d.syns, "SYN"), tilde(d.inferred), secs(d.blocked))
			if d.outcome != c.Outcome {
				d.outcome = 0
			}
			continue
		}
		byDest[key] = len(cs)
		cs = append(cs, culprit{n: c.Count, syns: c.Attempts, inferred: c.Inferred, host: host, port: fmt.Sprint(c.DstPort),
			blocked: c.BlockedMS, outcome: c.Outcome,
			detail: fmt.Sprintf("%s, %s%s", plural(c.Attempts, "SYN"), tilde(c.Inferred), secs(c.BlockedMS))})
		if c.Count > 1 {
			cs[len(cs)-1].detail = fmt.Sprintf("%d calls, %s, up to %s%s", c.Count, plural(c.Attempts, "SYN"), tilde(c.Inferred), secs(c.BlockedMS))
		}
		if c.PID != nil {
			cs[len(cs)-1].proc = procName(c.PID, c.Comm)
		}
	}
	// Lookups are named once per name: "lookups of x (A, AAAA; 1 query, ~2.0 s)".
	byName := map[string]int{}
	for _, l := range r.Lookups {
		if !failed(l.Outcome) {
			continue
		}
		failedBlocked = append(failedBlocked, interval{l.Start.UnixNano(), l.End.UnixNano()})
		if i, ok := byName[l.Name]; ok {
			c := &cs[i]
			if !slices.Contains(c.qtypes, l.QType) {
				c.qtypes = append(c.qtypes, l.QType)
			}
			c.n += l.Count
			if l.BlockedMS > c.blocked {
				c.blocked = l.BlockedMS
				c.detail = fmt.Sprintf("%s%s", tilde(l.Inferred), secs(l.BlockedMS))
			}
			continue
		}
		byName[l.Name] = len(cs)
		cs = append(cs, culprit{lookup: true, host: l.Name, qtypes: []string{l.QType}, n: l.Count, blocked: l.BlockedMS, outcome: l.Outcome,
			detail: fmt.Sprintf("%s%s", tilde(l.Inferred), secs(l.BlockedMS))})
	}
	nConn, nLook := 0, 0
	for _, c := range r.Connections {
		if !c.Loopback {
			nConn += c.Count
		}
	}
	for _, l := range r.Lookups {
		nLook += l.Count
	}
	head := fmt.Sprintf("the %s window was blocked %s (%s)", secs(w.DurationMS), secs(w.BlockedMS), pct(w.BlockedMS, w.DurationMS))
	if len(cs) == 0 {
		return fmt.Sprintf("%s; %s and %s, none failed", head, count(nConn, "outbound connection"), count(nLook, "lookup"))
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].blocked > cs[j].blocked })
	// The calls that matter: the largest, until they cover most of the
	// failed blocked time, at most four named.
	total := 0.0
	for _, c := range cs {
		total += c.blocked
	}
	var named []culprit
	sum := 0.0
	for _, c := range cs {
		if len(named) == 4 || (len(named) > 0 && sum >= 0.9*total) {
			break
		}
		named = append(named, c)
		sum += c.blocked
	}
	var conns, looks []culprit
	var nConnCalls, nLookCalls int
	connKinds, lookKinds := map[report.Outcome]int{}, map[report.Outcome]int{}
	for _, c := range r.Connections {
		if !c.Loopback && failed(c.Outcome) {
			connKinds[c.Outcome] += c.Count
		}
	}
	for _, c := range cs {
		if c.lookup {
			nLookCalls += c.n
			lookKinds[c.outcome] += c.n
		} else {
			nConnCalls += c.n
		}
	}
	for _, c := range named {
		if c.lookup {
			looks = append(looks, c)
		} else {
			conns = append(conns, c)
		}
	}
	var phrases []string
	if nConnCalls > 0 {
		phrases = append(phrases, describeOutcomes(connKinds, nConnCalls, "call", "calls")+" "+joinCulprits(conns, nConnCalls-countCalls(conns), "to "))
	}
	if nLookCalls > 0 {
		phrases = append(phrases, describeOutcomes(lookKinds, nLookCalls, "lookup", "lookups")+" "+joinCulprits(looks, nLookCalls-countCalls(looks), "of "))
	}
	return head + " by " + strings.Join(phrases, " and ")
}

func countCalls(cs []culprit) int {
	n := 0
	for _, c := range cs {
		n += c.n
	}
	return n
}

func describeOutcomes(kinds map[report.Outcome]int, n int, one, many string) string {
	word := "failed"
	if len(kinds) == 1 {
		for k := range kinds {
			switch k {
			case report.Timeout, report.Pending:
				word = "unanswered"
			case report.Refused:
				word = "refused"
			case report.Rejected:
				word = "rejected"
			case report.NXDomain:
				word = "NXDOMAIN"
			case report.ServFail:
				word = "SERVFAIL"
			}
		}
	} else if kinds[report.Timeout]+kinds[report.Pending] == n {
		word = "unanswered"
	}
	if n == 1 {
		return "1 " + word + " " + one
	}
	return fmt.Sprintf("%d %s %s", n, word, many)
}

// joinCulprits writes "to a:80 (...) and :443 (...)" style lists, sharing
// host names; hidden is how many calls were left unnamed.
func joinCulprits(cs []culprit, hidden int, prep string) string {
	var parts []string
	prevHost := ""
	for _, c := range cs {
		switch {
		case c.lookup && c.n > len(c.qtypes):
			parts = append(parts, fmt.Sprintf("%s (%s, %d queries, up to %s)", c.host, strings.Join(c.qtypes, "+"), c.n, c.detail))
		case c.lookup:
			parts = append(parts, fmt.Sprintf("%s (%s, %s)", c.host, strings.Join(c.qtypes, "+"), c.detail))
		case c.host == prevHost:
			parts = append(parts, ":"+c.port+" ("+c.detail+")"+by(c.proc))
		default:
			parts = append(parts, c.host+":"+c.port+" ("+c.detail+")"+by(c.proc))
			prevHost = c.host
		}
	}
	if len(parts) == 0 {
		return ""
	}
	s := prep
	if len(parts) == 1 {
		s += parts[0]
	} else {
		s += strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	if hidden > 0 {
		s += fmt.Sprintf(" (and %d more)", hidden)
	}
	return s
}

func secs(msv float64) string {
	s := msv / 1000
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 1:
		return fmt.Sprintf("%.1f s", s)
	default:
		return fmt.Sprintf("%.0f ms", msv)
	}
}

func pct(part, whole float64) string {
	if whole <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%.0f%%", 100*part/whole)
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
		hints = append(hints, report.Hint{
			Kind:    "resolved-not-contacted",
			Subject: l.Name,
			Text: fmt.Sprintf("%s was resolved (%s) but no packet to it appears in the capture: if the app "+
				"should have connected, a firewall on the capturing host may drop the SYNs before the capture "+
				"point sees them (record with nftables `log group N` and `tcpdump -i nflog:N`, or use `egress watch`)",
				l.Name, strings.Join(l.Answers, ", ")),
		})
	}
	if more > 0 {
		hints = append(hints, report.Hint{Kind: "more", Subject: "", Text: fmt.Sprintf("%d more names were resolved but not contacted", more)})
	}
	return hints
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if word == "query" {
		return fmt.Sprintf("%d queries", n)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func tilde(inferred bool) string {
	if inferred {
		return "~"
	}
	return ""
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

func by(proc string) string {
	if proc == "" {
		return ""
	}
	return " from " + proc
}

// procName is "comm[pid]" (comm made terminal-safe by the renderer).
func procName(pid *int, comm *string) string {
	if comm == nil || *comm == "" {
		return fmt.Sprintf("pid %d", *pid)
	}
	return fmt.Sprintf("%s[%d]", *comm, *pid)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
