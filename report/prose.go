package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The headline and the analyzer's hints are prose: they are written here,
// from the report's typed data (records, window, hosts), so that analyze
// writes no English.

// culprit is a destination whose failed calls the headline names.
type culprit struct {
	lookup   bool
	catchAll bool // the catch-all: dests destinations, never named
	dests    int
	syns     int      // connections: SYNs of all its calls
	inferred bool     // some give-up time is inferred
	qtypes   []string // lookups: the query types that failed
	n        int      // calls behind this culprit (lookups of one name merge)
	host     string
	port     string
	blocked  float64 // the longest single wait
	lost     float64 // the most one call of it lost (scheduler view)
	showLost bool    // the detail says so
	outcome  Outcome
	proc     string // "shopapp[4242]" where the process is known
	caller   string // "main.checkForUpdates (updates.go:42)" with --stacks
}

// culprits groups the failed calls by destination: a connection's host (or
// address) and port, a lookup's name.
func culprits(conns []Connection, looks []Lookup) []culprit {
	var cs []culprit
	byDest := map[string]int{}
	for i := range conns {
		c := &conns[i]
		if c.Loopback || !c.Outcome.Failed() {
			continue
		}
		host := c.Host
		if host == "" && c.DstIP.IsValid() {
			host = c.DstIP.String()
		}
		key := host + "\x00" + fmt.Sprint(c.DstPort)
		if c.IsCatchAll() {
			key = "\x00catch-all"
		}
		if i, ok := byDest[key]; ok {
			d := &cs[i]
			d.n += c.Count
			d.syns += c.Attempts
			d.inferred = d.inferred || c.Inferred
			d.blocked = max(d.blocked, c.BlockedMS)
			d.lost = max(d.lost, c.LostMS)
			d.dests += c.Destinations
			if d.outcome != c.Outcome {
				d.outcome = Mixed
			}
			continue
		}
		byDest[key] = len(cs)
		cu := culprit{n: c.Count, syns: c.Attempts, inferred: c.Inferred, host: host, port: fmt.Sprint(c.DstPort),
			blocked: c.BlockedMS, lost: c.LostMS, outcome: c.Outcome, catchAll: c.IsCatchAll(), dests: c.Destinations}
		if c.PID != nil {
			cu.proc = ProcName(c.PID, c.Comm)
		}
		cu.caller = c.CalledFrom
		cs = append(cs, cu)
	}
	byName := map[string]int{}
	for i := range looks {
		l := &looks[i]
		if !l.Outcome.Failed() {
			continue
		}
		key := l.Name
		if l.IsCatchAll() {
			key = "\x00catch-all"
		}
		if i, ok := byName[key]; ok {
			c := &cs[i]
			if !slices.Contains(c.qtypes, l.QType) {
				c.qtypes = append(c.qtypes, l.QType)
			}
			c.n += l.Count
			c.dests += l.Destinations
			c.inferred = c.inferred || l.Inferred
			c.blocked = max(c.blocked, l.BlockedMS)
			c.lost = max(c.lost, l.LostMS)
			if c.outcome != l.Outcome {
				c.outcome = Mixed
			}
			continue
		}
		byName[key] = len(cs)
		cs = append(cs, culprit{lookup: true, host: l.Name, qtypes: []string{l.QType}, n: l.Count, blocked: l.BlockedMS,
			lost: l.LostMS, outcome: l.Outcome, inferred: l.Inferred, catchAll: l.IsCatchAll(), dests: l.Destinations})
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].catchAll != cs[j].catchAll {
			return !cs[i].catchAll // a named destination before the catch-all
		}
		return cs[i].blocked > cs[j].blocked
	})
	return cs
}

// Headline is the one line that answers "why was it slow": how much of the
// window was blocked, and by which failed calls; with several local hosts,
// which hosts lost the most time and to what.
func Headline(r *Report) string {
	w := r.Window
	if w.DurationMS <= 0 && len(r.Connections) == 0 && len(r.Lookups) == 0 {
		return "no outbound connections or lookups seen"
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
	if r.HostsSeen > 1 {
		return hostsHeadline(r, nConn, nLook)
	}
	head := fmt.Sprintf("the %s window was blocked %s (%s)", humanSecs(w.DurationMS), humanSecs(w.BlockedMS), pct(w.BlockedMS, w.DurationMS))
	cs := culprits(r.Connections, r.Lookups)
	if len(cs) == 0 {
		return fmt.Sprintf("%s; %s and %s, none failed", head, count(nConn, "outbound connection"), count(nLook, "lookup"))
	}
	if w.LostBasis == LostScheduler {
		return lostHeadline(w, cs)
	}
	return head + " by " + describeCulprits(cs, 4)
}

// lostHeadline is the headline where the scheduler says what the failed
// calls cost: "the 12.0 s window lost 5.1 s (43%) waiting on 1 unanswered
// call to telemetry.nextjs.org:443 (..., lost 5.1 s); failed without cost:
// ...". The calls that lost time are named first, most lost first; those
// that failed while the app went on working are named apart.
func lostHeadline(w Window, cs []culprit) string {
	var costly, free []culprit
	for _, c := range cs {
		if c.lost >= 1 && !c.catchAll { // at least 1 ms
			c.showLost = true
			costly = append(costly, c)
		} else {
			free = append(free, c)
		}
	}
	sort.SliceStable(costly, func(i, j int) bool { return costly[i].lost > costly[j].lost })
	var s string
	if len(costly) == 0 {
		s = fmt.Sprintf("the %s window lost nothing to failed calls (blocked %s)", humanSecs(w.DurationMS), humanSecs(w.BlockedMS))
	} else {
		s = fmt.Sprintf("the %s window lost %s (%s) waiting on ", humanSecs(w.DurationMS), humanSecs(w.LostMS), pct(w.LostMS, w.DurationMS)) +
			describeCulprits(costly, 4)
	}
	if len(free) > 0 {
		s += "; failed without cost: " + describeCulprits(free, 4)
	}
	return s
}

// describeCulprits names the failed calls: "2 unanswered calls to a:80 (...)
// and b:443 (...) and 4 NXDOMAIN lookups of x (...)". It names at most
// limit destinations, the ones with the longest waits (when there are more,
// until they cover 90% of the culprits' waits), at least one of each kind,
// never the catch-all; the rest are counted.
func describeCulprits(cs []culprit, limit int) string {
	total := 0.0
	for _, c := range cs {
		total += c.blocked
	}
	named := make([]bool, len(cs))
	sum, n := 0.0, 0
	for i, c := range cs {
		if c.catchAll || n == limit || (len(cs) > limit && n > 0 && sum >= 0.9*total) {
			continue
		}
		named[i] = true
		sum += c.blocked
		n++
	}
	var phrases []string
	for _, lookup := range []bool{false, true} {
		var parts []culprit
		calls, hiddenCalls, hiddenDests := 0, 0, 0
		kinds := map[Outcome]int{}
		first := -1
		for i, c := range cs {
			if c.lookup != lookup {
				continue
			}
			if first < 0 && !c.catchAll {
				first = i
			}
			calls += c.n
			kinds[c.outcome] += c.n
		}
		if calls == 0 {
			continue
		}
		if first >= 0 { // at least one destination of each kind is named
			anyNamed := false
			for i, c := range cs {
				anyNamed = anyNamed || (c.lookup == lookup && named[i])
			}
			if !anyNamed {
				named[first] = true
			}
		}
		for i, c := range cs {
			switch {
			case c.lookup != lookup:
			case named[i]:
				parts = append(parts, c)
			case c.catchAll:
				hiddenCalls += c.n
				hiddenDests += max(c.dests, 1)
			default:
				hiddenCalls += c.n
				hiddenDests++
			}
		}
		one, many, prep, other := "call", "calls", "to ", "destination"
		if lookup {
			one, many, prep, other = "lookup", "lookups", "of ", "name"
		}
		phrase := describeOutcomes(kinds, calls, one, many)
		if len(parts) > 0 {
			phrase += " " + joinCulprits(parts, prep)
		}
		if hiddenCalls > 0 {
			more := "more "
			if len(parts) == 0 {
				more = ""
			}
			phrase += fmt.Sprintf(" (%s%s %s%s)", more, count(hiddenCalls, one), prep, count(hiddenDests, "other "+other))
		}
		phrases = append(phrases, phrase)
	}
	return strings.Join(phrases, " and ")
}

// detail is a culprit's parenthesis: "3 SYNs, ~3.0 s", "2 calls, 6 SYNs,
// up to ~3.0 s", "AAAA+A, 2 queries, up to 5.0 s".
func (c culprit) detail() string {
	wait := tilde(c.inferred) + humanSecs(c.blocked)
	if c.showLost {
		wait += ", lost " + humanSecs(c.lost)
	}
	switch {
	case c.lookup && c.n > len(c.qtypes):
		return fmt.Sprintf("%s, %d queries, up to %s", strings.Join(c.qtypes, "+"), c.n, wait)
	case c.lookup:
		return strings.Join(c.qtypes, "+") + ", " + wait
	case c.n > 1:
		return fmt.Sprintf("%d calls, %s, up to %s", c.n, plural(c.syns, "SYN"), wait)
	}
	return plural(c.syns, "SYN") + ", " + wait
}

func describeOutcomes(kinds map[Outcome]int, n int, one, many string) string {
	word := "failed"
	if len(kinds) == 1 {
		for k := range kinds {
			switch k {
			case Timeout, Pending:
				word = "unanswered"
			case Refused:
				word = "refused"
			case Rejected:
				word = "rejected"
			case NXDomain:
				word = "NXDOMAIN"
			case ServFail:
				word = "SERVFAIL"
			}
		}
	} else if kinds[Timeout]+kinds[Pending] == n {
		word = "unanswered"
	}
	if n == 1 {
		return "1 " + word + " " + one
	}
	return fmt.Sprintf("%d %s %s", n, word, many)
}

// joinCulprits writes "to a:80 (...) and :443 (...)" style lists, sharing
// host names.
func joinCulprits(cs []culprit, prep string) string {
	var parts []string
	prevHost := ""
	for i, c := range cs {
		// The top culprit also says which code made it (--stacks).
		from := by(c.proc)
		if i == 0 && c.caller != "" {
			if from != "" {
				from += ","
			}
			from += " called from " + c.caller
		}
		switch {
		case c.lookup:
			parts = append(parts, c.host+" ("+c.detail()+")")
		case c.host == prevHost:
			parts = append(parts, ":"+c.port+" ("+c.detail()+")"+from)
		default:
			parts = append(parts, c.host+":"+c.port+" ("+c.detail()+")"+from)
			prevHost = c.host
		}
	}
	if len(parts) == 1 {
		return prep + parts[0]
	}
	return prep + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// hostsHeadline answers per host: the hosts that lost the most time to
// failed calls, each with its share of its own active time and its top
// culprits.
func hostsHeadline(r *Report, nConn, nLook int) string {
	head := fmt.Sprintf("%d hosts made %s and %s in the %s window", r.HostsSeen,
		count(nConn, "outbound connection"), count(nLook, "lookup"), humanSecs(r.Window.DurationMS))
	var lost []string
	shown := 0
	for _, h := range r.Hosts {
		if h.LostMS <= 0 || shown == 3 {
			continue
		}
		shown++
		who := h.Address.String()
		if len(h.Processes) > 0 {
			who += " (" + strings.Join(h.Processes, ", ") + ")"
		}
		s := fmt.Sprintf("%s lost %s of its %s active (%s)", who, humanSecs(h.LostMS), humanSecs(h.ActiveMS), pct(h.LostMS, h.ActiveMS))
		var cs []culprit
		for _, c := range h.Culprits {
			cs = append(cs, culprit{lookup: c.Lookup, host: c.Destination, n: c.Calls, blocked: c.LongestMS,
				inferred: c.Inferred, outcome: c.Outcome})
		}
		if len(cs) > 0 {
			s += " to " + hostCulprits(cs)
		}
		lost = append(lost, s)
	}
	if len(lost) == 0 {
		return head + ", none failed"
	}
	tail := ""
	if r.HostsFailing > shown {
		tail = fmt.Sprintf("; %d of the %d hosts had failed calls", r.HostsFailing, r.HostsSeen)
	}
	return head + "; most time lost: " + strings.Join(lost, "; ") + tail
}

// hostCulprits writes a host's culprits briefly: "a:443 (3 unanswered
// calls, up to ~9.0 s) and lookups of b (2 NXDOMAIN, up to 1 ms) and c
// (...)".
func hostCulprits(cs []culprit) string {
	var conns, looks []string
	for _, c := range cs {
		if c.lookup {
			word := strings.TrimPrefix(describeOutcomes(map[Outcome]int{c.outcome: c.n}, c.n, "", ""), fmt.Sprint(c.n)+" ")
			looks = append(looks, fmt.Sprintf("%s (%d %s, up to %s%s)", c.host, c.n, strings.TrimSpace(word), tilde(c.inferred), humanSecs(c.blocked)))
			continue
		}
		conns = append(conns, fmt.Sprintf("%s (%s, up to %s%s)", c.host, describeOutcomes(map[Outcome]int{c.outcome: c.n}, c.n, "call", "calls"), tilde(c.inferred), humanSecs(c.blocked)))
	}
	parts := conns
	if len(looks) > 0 {
		parts = append(parts, "lookups of "+strings.Join(looks, " and "))
	}
	return strings.Join(parts, " and ")
}

// secs writes a duration given in milliseconds for people: "3.1 s",
// "12 ms", "0.36 ms" (never "0 ms" for a wait that was not zero).
func humanSecs(msv float64) string {
	s := msv / 1000
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 1:
		return fmt.Sprintf("%.1f s", s)
	case msv >= 10 || msv == 0:
		return fmt.Sprintf("%.0f ms", msv)
	case msv >= 1:
		return fmt.Sprintf("%.1f ms", msv)
	}
	return fmt.Sprintf("%.2f ms", msv)
}

func pct(part, whole float64) string {
	switch {
	case whole <= 0 || part <= 0:
		return "0%"
	case 100*part/whole < 1:
		return "<1%"
	}
	return fmt.Sprintf("%.0f%%", 100*part/whole)
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

func by(proc string) string {
	if proc == "" {
		return ""
	}
	return " from " + proc
}

// ProcName is "comm[pid]", "pid N" without a name, "" without a pid (comm
// made terminal-safe by the renderer).
func ProcName(pid *int, comm *string) string {
	if pid == nil {
		return ""
	}
	if comm == nil || *comm == "" {
		return fmt.Sprintf("pid %d", *pid)
	}
	return fmt.Sprintf("%s[%d]", *comm, *pid)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(what, "y"))
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// ResolvedNotContactedHint: name was resolved to answers but no packet to
// them was seen.
func ResolvedNotContactedHint(name string, answers []string) Hint {
	return Hint{
		Kind:    "resolved-not-contacted",
		Subject: name,
		Text: fmt.Sprintf("%s was resolved (%s) but no packet to it appears in the capture: if the app "+
			"should have connected, a firewall on the capturing host may drop the SYNs before the capture "+
			"point sees them (record with nftables `log group N` and `tcpdump -i nflog:N`, or use `egress watch`)",
			name, strings.Join(answers, ", ")),
	}
}

// MoreResolvedHint counts the resolved-not-contacted names past the limit.
func MoreResolvedHint(more int) Hint {
	return Hint{Kind: "more", Subject: "", Text: fmt.Sprintf("%d more names were resolved but not contacted", more)}
}

// StackUnnamedHint: the stacks of process who (ProcName, "" when unknown)
// name no function of the application.
func StackUnnamedHint(who string) Hint {
	if who == "" {
		who = "an unknown process"
	}
	return Hint{Kind: "stack-unnamed", Subject: who, Text: fmt.Sprintf(
		"the stacks of %s name no function of the application, only module+offset: its code has no symbols, or no frame pointers "+
			"(build C/C++ with -fno-omit-frame-pointer and keep the symbol table; run Node.js with --perf-basic-prof "+
			"--interpreted-frames-native-stack, Python 3.12+ with -X perf; see docs/watch.md)", who)}
}

// UnhookedPacketsHint: egress run's catch-all counted packets of proto
// from sockets the connect/sendmsg hooks do not see.
func UnhookedPacketsHint(proto string, packets, dropped uint64) Hint {
	return Hint{Kind: "catch-all", Subject: proto,
		Text: fmt.Sprintf("%d packet(s) of a socket the connect/sendmsg hooks do not see, %d dropped", packets, dropped)}
}

// ChildStepsFoldedHint: past limit child-cgroup TCP connections, n steps
// were only counted.
func ChildStepsFoldedHint(n, limit int) Hint {
	return Hint{Kind: "blocked-folded", Subject: fmt.Sprintf("%d step(s)", n),
		Text: fmt.Sprintf("more than %d child-cgroup TCP connections: the steps of the rest are only counted", limit)}
}

// BlockedFoldedHint: past limit distinct calls, n calls with outcome out
// are counted in the record named record.
func BlockedFoldedHint(n, limit int, out Outcome, record string) Hint {
	return Hint{Kind: "blocked-folded", Subject: fmt.Sprintf("%d call(s)", n),
		Text: fmt.Sprintf("more than %d distinct calls refused or reported by the cgroup programs: the rest (%s) are counted in the record %q", limit, out, record)}
}

// BlockedHint: egress run --block refused n calls.
func BlockedHint(n int) Hint {
	return Hint{Kind: "blocked", Subject: fmt.Sprintf("%d call(s)", n),
		Text: "egress run --block refused calls to destinations the policy does not allow: the app got EPERM at once instead of waiting"}
}

// StoppedHint: egress run was interrupted and stopped the command name.
func StoppedHint(name string) Hint {
	return Hint{Kind: "stopped", Subject: name,
		Text: "egress was interrupted (SIGINT or SIGTERM) and passed SIGTERM on: egress stopped the command, the report covers the run until then"}
}

// DNSProxyOverloadedHint: what egress run's DNS proxy could not forward.
func DNSProxyOverloadedHint(overloaded, kernelDropped, tcpRefused uint64) Hint {
	return Hint{Kind: "dns-proxy", Subject: "overloaded",
		Text: fmt.Sprintf("%d queries answered SERVFAIL without forwarding (too many in flight), %d dropped by the kernel (socket buffer full), %d TCP connections closed unread",
			overloaded, kernelDropped, tcpRefused)}
}

// ConfinementHint says what the command ran without: the capabilities
// dropped, and those kept on request.
func ConfinementHint(dropped, kept []string) Hint {
	text := "the command ran without the capabilities " + strings.Join(dropped, ", ") +
		", with no_new_privs, in its own cgroup namespace (rooted at the run's cgroup) and pid namespace"
	if len(kept) > 0 {
		text += "; kept on request (--keep-caps): " + strings.Join(kept, ", ")
	}
	return Hint{Kind: "confinement", Subject: "privileges", Text: text}
}

// IncompleteHeadline is headline when lost kernel events may hide calls.
func IncompleteHeadline(lost uint64, headline string) string {
	return fmt.Sprintf("INCOMPLETE: %d kernel event(s) lost, calls may be missing; %s", lost, headline)
}
