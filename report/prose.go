package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The words people read at the top of a report and in its hints: the
// analyzer decides what happened, this file says it.

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
	outcome  Outcome // 0 when its calls ended differently
	detail   string  // "3 SYNs, ~3.0 s"
	proc     string  // "shopapp[4242]" where the process is known
}

// failed says whether an outcome means the caller did not get what it
// asked for.
func failed(outcome Outcome) bool {
	switch outcome {
	case Timeout, Pending, Refused, Rejected, ServFail, NXDomain:
		return true
	}
	return false
}

// Headline is the one line that answers "why was it slow": how much of the
// window was blocked, and by which failed calls.
func Headline(r *Report) string {
	w := r.Window
	if w.Duration <= 0 && len(r.Connections) == 0 && len(r.Lookups) == 0 {
		return "no outbound connections or lookups seen"
	}
	var cs []culprit
	byDest := map[string]int{}
	for _, c := range r.Connections {
		if c.Loopback || !failed(c.Outcome) {
			continue
		}
		host := c.Host
		if host == "" {
			host = c.DstIP.String()
		}
		// Calls to one destination are named once: "host:80 (9 calls, 99
		// SYNs, up to ~68.4 s)".
		key := host + "\x00" + fmt.Sprint(c.DstPort)
		if i, ok := byDest[key]; ok {
			d := &cs[i]
			d.n += c.Count
			d.syns += c.Attempts
			d.inferred = d.inferred || c.Inferred
			d.blocked = max(d.blocked, c.Blocked.MS())
			d.detail = fmt.Sprintf("%d calls, %s, up to %s%s", d.n, plural(d.syns, "SYN"), tilde(d.inferred), roundSecs(d.blocked))
			if d.outcome != c.Outcome {
				d.outcome = 0
			}
			continue
		}
		byDest[key] = len(cs)
		cs = append(cs, culprit{n: c.Count, syns: c.Attempts, inferred: c.Inferred, host: host, port: fmt.Sprint(c.DstPort),
			blocked: c.Blocked.MS(), outcome: c.Outcome,
			detail: fmt.Sprintf("%s, %s%s", plural(c.Attempts, "SYN"), tilde(c.Inferred), roundSecs(c.Blocked.MS()))})
		if c.Count > 1 {
			cs[len(cs)-1].detail = fmt.Sprintf("%d calls, %s, up to %s%s", c.Count, plural(c.Attempts, "SYN"), tilde(c.Inferred), roundSecs(c.Blocked.MS()))
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
		if i, ok := byName[l.Name]; ok {
			c := &cs[i]
			if !slices.Contains(c.qtypes, l.QType) {
				c.qtypes = append(c.qtypes, l.QType)
			}
			c.n += l.Count
			if l.Blocked.MS() > c.blocked {
				c.blocked = l.Blocked.MS()
				c.detail = fmt.Sprintf("%s%s", tilde(l.Inferred), roundSecs(l.Blocked.MS()))
			}
			continue
		}
		byName[l.Name] = len(cs)
		cs = append(cs, culprit{lookup: true, host: l.Name, qtypes: []string{l.QType}, n: l.Count, blocked: l.Blocked.MS(), outcome: l.Outcome,
			detail: fmt.Sprintf("%s%s", tilde(l.Inferred), roundSecs(l.Blocked.MS()))})
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
	head := fmt.Sprintf("the %s window was blocked %s (%s)", roundSecs(w.Duration.MS()), roundSecs(w.Blocked.MS()), pct(w.Blocked.MS(), w.Duration.MS()))
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
	connKinds, lookKinds := map[Outcome]int{}, map[Outcome]int{}
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

func roundSecs(msv float64) string {
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

// ResolvedNotContacted is the hint for a name resolved (to answers) that
// no packet went to: the sign of a firewall on the capturing host that
// drops SYNs before the capture point.
func ResolvedNotContacted(name string, answers []string) Hint {
	return Hint{
		Kind:    "resolved-not-contacted",
		Subject: name,
		Text: fmt.Sprintf("%s was resolved (%s) but no packet to it appears in the capture: if the app "+
			"should have connected, a firewall on the capturing host may drop the SYNs before the capture "+
			"point sees them (record with nftables `log group N` and `tcpdump -i nflog:N`, or use `egress watch`)",
			name, strings.Join(answers, ", ")),
	}
}

// MoreResolvedNotContacted counts the names past the hints' limit.
func MoreResolvedNotContacted(n int) Hint {
	return Hint{Kind: "more", Subject: "", Text: fmt.Sprintf("%d more names were resolved but not contacted", n)}
}

// BlockedHint says that egress run --block refused n calls.
func BlockedHint(n int) Hint {
	return Hint{Kind: "blocked", Subject: fmt.Sprintf("%d call(s)", n),
		Text: "egress run --block refused calls to destinations the policy does not allow: the app got EPERM at once instead of waiting"}
}
