package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Failure says why a call fails the check, that is, why egress's exit code
// is not zero because of it. It is set once, by Judge; every renderer and
// the exit decision read it, so they cannot disagree.
type Failure string

// Failures, worst first.
const (
	FailNone       Failure = ""
	FailBlocked    Failure = "blocked"    // egress run --block refused it (the policy does not allow it)
	FailUnexpected Failure = "unexpected" // the policy does not allow it
	FailOutcome    Failure = "fail-on"    // its outcome is one --fail-on names
)

func (f Failure) rank() int {
	switch f {
	case FailBlocked:
		return 0
	case FailUnexpected:
		return 1
	case FailOutcome:
		return 2
	}
	return 3
}

// RefusedByBlock is who refused a call that egress run --block refused.
const RefusedByBlock = "egress run --block"

// Verdict is the judgement of one call: the policy's (only with rules), the
// catalog's label, who refused it, and whether it fails the check.
type Verdict struct {
	// Expected is set only when a policy judged the call (--rules or
	// --baseline); nil means no policy applied.
	Expected  *bool   `json:"expected,omitempty"`
	Rule      string  `json:"rule,omitempty"`
	Catalog   string  `json:"catalog,omitempty"`    // label of a known phone-home
	RefusedBy string  `json:"refused_by,omitempty"` // "egress run --block" when egress refused it
	Fails     Failure `json:"fails,omitempty"`      // why it fails the check; absent when it does not
}

// Unexpected says whether a policy judged the call and did not allow it.
func (v *Verdict) Unexpected() bool { return v != nil && v.Expected != nil && !*v.Expected }

// Failure is v.Fails, FailNone for a nil verdict.
func (v *Verdict) Failure() Failure {
	if v == nil {
		return FailNone
	}
	return v.Fails
}

// mark is the verdict as the table writes it after a call's outcome, the
// same words as VerdictText.
func (v *Verdict) mark() string {
	var s string
	if v.Unexpected() {
		s += " UNEXPECTED"
	}
	if v != nil && v.RefusedBy != "" {
		s += " (refused by " + v.RefusedBy + ")"
	}
	if v.Failure() == FailOutcome {
		s += " FAILS --fail-on"
	}
	return s
}

// Check says how a report was judged. It is set when a policy, a baseline
// or --fail-on applied, and absent otherwise.
type Check struct {
	Rules    string `json:"rules,omitempty"`    // the --rules policy file
	Baseline string `json:"baseline,omitempty"` // the --baseline report whose destinations are expected
	// Mode is "enforce" when unexpected calls fail the check, "audit" when
	// they are only reported.
	Mode   string    `json:"mode"`
	FailOn []Outcome `json:"fail_on,omitempty"` // outcomes that fail the check
	// Failed counts the destinations that fail the check; Unexpected those
	// the policy does not allow, failing or not.
	Failed     int `json:"failed"`
	Unexpected int `json:"unexpected"`
}

// Criteria is what Judge judges by.
type Criteria struct {
	Rules, Baseline string
	// Enforce makes calls the policy does not allow fail the check.
	Enforce bool
	// FailOn lists the outcomes (Timeout, NXDomain...) that fail the check.
	FailOn []Outcome
}

func (c Criteria) active() bool {
	return c.Rules != "" || c.Baseline != "" || c.Enforce || len(c.FailOn) > 0
}

// Judge decides, once, which calls of r fail the check, and why: it sets
// each call's Verdict.Fails and RefusedBy, and r.Check. The policy's part of
// the verdict (Expected, Rule) must already be set (rules.Annotate). It
// returns the failing destinations, worst first: the exit decision and
// every renderer read the same verdicts.
func Judge(r *Report, c Criteria) []*Destination {
	failOn := map[Outcome]bool{}
	for _, o := range c.FailOn {
		failOn[o] = true
	}
	judge := func(v **Verdict, outcome Outcome, basis string, blockedBasis string) {
		if basis == blockedBasis {
			if *v == nil {
				*v = &Verdict{}
			}
			(*v).RefusedBy = RefusedByBlock
		}
		fails := FailNone
		switch {
		case (*v).Unexpected() && c.Enforce && basis == blockedBasis:
			fails = FailBlocked
		case (*v).Unexpected() && c.Enforce:
			fails = FailUnexpected
		case failOn[outcome]:
			fails = FailOutcome
		}
		if fails != FailNone && *v == nil {
			*v = &Verdict{}
		}
		if *v != nil {
			(*v).Fails = fails
		}
	}
	for i := range r.Connections {
		conn := &r.Connections[i]
		if conn.Loopback {
			continue
		}
		judge(&conn.Verdict, conn.Outcome, conn.EndBasis, BasisBlockedConnect)
	}
	for i := range r.Lookups {
		l := &r.Lookups[i]
		if l.EndBasis == BasisBlockedLookup {
			// The proxy refused the name because the policy allows nothing
			// under it: that is the policy's judgement of the name.
			if l.Verdict == nil {
				l.Verdict = &Verdict{}
			}
			l.Verdict.Expected = ptrTo(false)
		}
		judge(&l.Verdict, l.Outcome, l.EndBasis, BasisBlockedLookup)
	}
	ds := Destinations(r)
	var failing []*Destination
	if c.active() {
		r.Check = &Check{Rules: c.Rules, Baseline: c.Baseline, Mode: "audit", FailOn: slices.Clone(c.FailOn)}
		if c.Enforce {
			r.Check.Mode = "enforce"
		}
		for _, d := range ds {
			if d.Fails != FailNone {
				failing = append(failing, d)
			}
			if d.Unexpected {
				r.Check.Unexpected++
			}
		}
		r.Check.Failed = len(failing)
	}
	return failing
}

func ptrTo[T any](v T) *T { return &v }

// Destination is every outbound call to one host (or address), port and
// protocol, or every failed lookup of one name (Proto "dns"): the unit a CI
// check passes or fails. Loopback calls are left out: a local database is
// not a phone-home.
type Destination struct {
	Name       string     // host name, else the address
	Addr       netip.Addr // the address, when Name is it
	Port       uint16
	Proto      string
	Calls      int             // calls (folded counts included)
	Outcomes   map[Outcome]int // outcome -> calls
	Processes  []string        // "comm[pid]", sorted, at most 8
	Comms      []string        // the command names of Processes, sorted, once each
	BlockedMS  float64         // the union of the calls' waits (parallel calls count once)
	LongestMS  float64         // the longest single wait
	Unexpected bool            // some call is not allowed by the policy
	Fails      Failure         // the worst of the calls' failures
	RefusedBy  string          // who refused calls to it, when egress did
	Rule       string          // the policy's reason for the first (unexpected) call
	Catalog    string          // the catalog's label, when a known phone-home
	Reasons    []string        // why calls failed where known (end basis), once each

	spans []span
}

type span struct{ start, end time.Time }

// Failed says whether some call to d did not get through.
func (d *Destination) Failed() bool {
	for o := range d.Outcomes {
		if o != Established && o != Answered && o != NoData {
			return true
		}
	}
	return false
}

// Target is "name:port", bracketing IPv6 addresses; a lookup (Proto
// "dns") is just the name.
func (d *Destination) Target() string {
	if d.Proto == "dns" {
		return Safe(d.Name)
	}
	if d.Addr.Is6() {
		return fmt.Sprintf("[%s]:%d", d.Name, d.Port)
	}
	if d.Port == 0 && d.Proto == "tcp" {
		return Safe(d.Name) // a catch-all: no port to show
	}
	return fmt.Sprintf("%s:%d", Safe(d.Name), d.Port)
}

// ID is the destination as a test case names it: "host:port/proto" or
// "name/dns".
func (d *Destination) ID() string { return d.Target() + "/" + d.Proto }

// OutcomeText lists the outcomes with their counts, most frequent first.
func (d *Destination) OutcomeText() string {
	type oc struct {
		o string
		n int
	}
	var ocs []oc
	for o, n := range d.Outcomes {
		ocs = append(ocs, oc{o.String(), n})
	}
	slices.SortFunc(ocs, func(a, b oc) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.o, b.o)) })
	parts := make([]string, len(ocs))
	for i, x := range ocs {
		parts[i] = x.o
		if x.n > 1 {
			parts[i] = fmt.Sprintf("%s x%d", x.o, x.n)
		}
	}
	return strings.Join(parts, ", ")
}

// VerdictText is the verdict in words, the same in every format:
// "unexpected, refused by egress run --block (no rule)", "expected
// (allow.yaml:3)", "fails --fail-on". It is "" when nothing judged d.
func (d *Destination) VerdictText() string {
	var parts []string
	switch {
	case d.Unexpected:
		parts = append(parts, "unexpected")
	case d.Rule != "":
		parts = append(parts, "expected")
	}
	if d.RefusedBy != "" {
		parts = append(parts, "refused by "+d.RefusedBy)
	}
	if d.Fails == FailOutcome {
		parts = append(parts, "fails --fail-on "+d.OutcomeText())
	}
	s := strings.Join(parts, ", ")
	if d.Rule != "" && s != "" {
		s += " (" + Safe(d.Rule) + ")"
	}
	return s
}

// Destinations groups r's outbound connections by destination, and its
// failed or unexpected lookups by name (Proto "dns": retries, A and AAAA
// are one destination): failing ones first (worst failure first), then the other
// unexpected ones, then those with failed calls, then the rest; within
// each, the longest wait first.
func Destinations(r *Report) []*Destination {
	type key struct {
		name  string
		port  uint16
		proto string
	}
	byKey := map[key]*Destination{}
	var ds []*Destination
	get := func(k key) *Destination {
		d := byKey[k]
		if d == nil {
			d = &Destination{Name: k.name, Port: k.port, Proto: k.proto, Outcomes: map[Outcome]int{}}
			byKey[k] = d
			ds = append(ds, d)
		}
		return d
	}
	add := func(d *Destination, count int, outcome Outcome, pid *int, comm *string, start, end time.Time, blockedMS float64, basis string, v *Verdict) {
		n := max(count, 1)
		d.Calls += n
		d.Outcomes[outcome] += n
		d.LongestMS = max(d.LongestMS, blockedMS)
		if !start.IsZero() && end.After(start) {
			d.spans = append(d.spans, span{start, end})
		}
		if p := proc(pid, comm); p != "-" && !slices.Contains(d.Processes, p) && len(d.Processes) < 8 {
			d.Processes = append(d.Processes, p)
		}
		if comm != nil && *comm != "" && !slices.Contains(d.Comms, *comm) && len(d.Comms) < 8 {
			d.Comms = append(d.Comms, *comm)
		}
		if outcome != Established && basis != "" && !slices.Contains(d.Reasons, basis) {
			d.Reasons = append(d.Reasons, basis)
		}
		if v == nil {
			return
		}
		if v.Unexpected() && !d.Unexpected {
			d.Unexpected, d.Rule = true, v.Rule
		}
		if d.Rule == "" {
			d.Rule = v.Rule
		}
		if d.Catalog == "" {
			d.Catalog = v.Catalog
		}
		if d.RefusedBy == "" {
			d.RefusedBy = v.RefusedBy
		}
		if v.Fails != FailNone && v.Fails.rank() < d.Fails.rank() {
			d.Fails = v.Fails
		}
	}
	for i := range r.Connections {
		c := &r.Connections[i]
		if c.Loopback {
			continue
		}
		k := key{c.Host, c.DstPort, c.Proto}
		if k.name == "" {
			k.name = addrText(c.DstIP)
		}
		if c.IsCatchAll() { // issue 7: no port, and how many it stands for
			k.name = fmt.Sprintf("%d other destinations", c.Destinations)
		}
		d := get(k)
		if c.DstIP.IsValid() && k.name == addrText(c.DstIP) {
			d.Addr = c.DstIP // named by its address
		}
		add(d, c.Count, c.Outcome, c.PID, c.Comm, c.Start, c.End, c.BlockedMS, c.EndBasis, c.Verdict)
	}
	for i := range r.Lookups {
		l := &r.Lookups[i]
		// A failed lookup is a destination; so is one the policy judged
		// unexpected (egress run: a lookup of a name no host entry allows
		// is a call of its own, DNS carries data out), answered or not.
		if (l.Outcome == Answered || l.Outcome == NoData) && !l.Verdict.Unexpected() {
			continue
		}
		name := strings.TrimSuffix(l.Name, ".")
		add(get(key{name, 0, "dns"}), l.Count, l.Outcome, l.PID, l.Comm, l.Start, l.End, l.BlockedMS, l.EndBasis, l.Verdict)
	}
	for _, d := range ds {
		slices.Sort(d.Processes)
		slices.Sort(d.Comms)
		d.BlockedMS = unionMS(d.spans)
		d.spans = nil
	}
	slices.SortStableFunc(ds, func(a, b *Destination) int {
		return cmp.Or(cmp.Compare(a.rank(), b.rank()), cmp.Compare(b.BlockedMS, a.BlockedMS),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return ds
}

// rank orders destinations: failing (worst first), unexpected, failed, rest.
func (d *Destination) rank() int {
	switch {
	case d.Fails != FailNone:
		return d.Fails.rank()
	case d.Unexpected:
		return 3
	case d.Failed():
		return 4
	}
	return 5
}

// unionMS is the length of the union of the spans, in milliseconds: the
// time something was waiting, parallel waits counted once.
func unionMS(ss []span) float64 {
	slices.SortFunc(ss, func(a, b span) int { return a.start.Compare(b.start) })
	var total time.Duration
	var cur span
	for i, s := range ss {
		switch {
		case i == 0:
			cur = s
		case !s.start.After(cur.end):
			if s.end.After(cur.end) {
				cur.end = s.end
			}
		default:
			total += cur.end.Sub(cur.start)
			cur = s
		}
	}
	if len(ss) > 0 {
		total += cur.end.Sub(cur.start)
	}
	return float64(total.Microseconds()) / 1000
}

// describe is one line about d for people: who called, what happened, what
// it is, and the verdict.
func (d *Destination) describe() string {
	var b strings.Builder
	what := "call to"
	if d.Proto == "dns" {
		what = "lookup of"
	}
	if d.Unexpected {
		what = "unexpected " + what
	}
	fmt.Fprintf(&b, "%s %s", what, d.ID())
	if len(d.Processes) > 0 {
		fmt.Fprintf(&b, " by %s", strings.Join(d.Processes, ", "))
	}
	fmt.Fprintf(&b, ": %s", d.OutcomeText())
	if d.RefusedBy != "" {
		fmt.Fprintf(&b, ", refused by %s", d.RefusedBy)
	} else if len(d.Reasons) > 0 {
		fmt.Fprintf(&b, " (%s)", Safe(strings.Join(d.Reasons, ", ")))
	}
	if d.BlockedMS >= 1 {
		fmt.Fprintf(&b, ", waited %s", durText(d.BlockedMS))
	}
	if d.Unexpected && d.Rule != "" {
		fmt.Fprintf(&b, "; policy: %s", Safe(d.Rule))
	}
	if d.Fails == FailOutcome {
		b.WriteString("; matches --fail-on")
	}
	if d.Catalog != "" {
		fmt.Fprintf(&b, "; known phone-home: %s", Safe(d.Catalog))
	}
	return b.String()
}

// FailureSummary names the failing destinations in one line for stderr:
// at most max of them, then how many more.
func FailureSummary(failing []*Destination, max int) string {
	var parts []string
	for i, d := range failing {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(failing)-max))
			break
		}
		s := d.ID() + " (" + d.OutcomeText()
		if d.RefusedBy != "" {
			s += ", refused by " + d.RefusedBy
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, "; ")
}
