package report

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// End bases that egress run --block sets on what it refused.
const (
	BasisBlockedConnect = "blocked: egress run --block refused connect()/sendmsg() with EPERM"
	BasisBlockedLookup  = "blocked: egress run --block answered REFUSED (name not allowed)"
)

// Destination is every outbound call to one host (or address), port and
// protocol: the unit a CI check passes or fails. Loopback calls are left
// out: a local database is not a phone-home.
type Destination struct {
	Name       string // host name, else the address
	Port       uint16
	Proto      string
	Calls      int            // connection attempts (folded counts included)
	Outcomes   map[string]int // outcome -> calls
	Processes  []string       // "comm[pid]", sorted, at most 8
	BlockedMS  float64
	Unexpected bool     // some call is not allowed by the policy
	Rule       string   // the policy's reason for the first call (FILE:LINE, "no rule"...)
	Catalog    string   // the catalog's label, when a known phone-home
	Reasons    []string // why calls failed where known (end basis), once each
}

// Failed says whether some call to d did not get through.
func (d *Destination) Failed() bool {
	for o := range d.Outcomes {
		if o != Established {
			return true
		}
	}
	return false
}

// Target is "name:port", bracketing IPv6 addresses; a refused name
// (Proto "dns") is just the name.
func (d *Destination) Target() string {
	if d.Proto == "dns" {
		return Safe(d.Name)
	}
	if a, err := netip.ParseAddr(d.Name); err == nil && a.Is6() {
		return fmt.Sprintf("[%s]:%d", d.Name, d.Port)
	}
	if d.Port == 0 && d.Proto == "tcp" {
		return Safe(d.Name) // a catch-all: no port to show
	}
	return fmt.Sprintf("%s:%d", Safe(d.Name), d.Port)
}

// OutcomeText lists the outcomes with their counts, most frequent first.
func (d *Destination) OutcomeText() string {
	type oc struct {
		o string
		n int
	}
	var ocs []oc
	for o, n := range d.Outcomes {
		ocs = append(ocs, oc{o, n})
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

// Destinations groups r's outbound connections by destination, plus the
// names egress run --block refused to resolve (Proto "dns"): unexpected
// ones first, then failed ones, then by name and port.
func Destinations(r *Report) []*Destination {
	type key struct {
		name  string
		port  uint16
		proto string
	}
	byKey := map[key]*Destination{}
	var ds []*Destination
	for i := range r.Connections {
		c := &r.Connections[i]
		if c.Loopback {
			continue
		}
		k := key{c.Host, c.DstPort, c.Proto}
		if k.name == "" {
			k.name = c.DstIP
		}
		if c.IsCatchAll() { // issue 7: no port, and how many it stands for
			k.name = fmt.Sprintf("%d other destinations", c.Destinations)
		}
		d := byKey[k]
		if d == nil {
			d = &Destination{Name: k.name, Port: k.port, Proto: k.proto, Outcomes: map[string]int{}}
			byKey[k] = d
			ds = append(ds, d)
		}
		n := max(c.Count, 1)
		d.Calls += n
		d.Outcomes[c.Outcome] += n
		d.BlockedMS += c.BlockedMS
		if p := proc(c.PID, c.Comm); p != "-" && !slices.Contains(d.Processes, p) && len(d.Processes) < 8 {
			d.Processes = append(d.Processes, p)
		}
		if c.Outcome != Established && c.EndBasis != "" && !slices.Contains(d.Reasons, c.EndBasis) {
			d.Reasons = append(d.Reasons, c.EndBasis)
		}
		if v := c.Verdict; v != nil {
			if !v.Expected && !d.Unexpected {
				d.Unexpected, d.Rule = true, v.Rule
			}
			if d.Rule == "" {
				d.Rule = v.Rule
			}
			if d.Catalog == "" {
				d.Catalog = v.Catalog
			}
		}
	}
	// Names the DNS proxy of egress run --block refused are destinations
	// too: the app wanted to reach them, and the policy said no.
	for i := range r.Lookups {
		l := &r.Lookups[i]
		// egress run judges a lookup of a name no host entry allows as a
		// call of its own (DNS carries data out); --block refused it.
		judged := l.Verdict != nil && !l.Verdict.Expected && l.Verdict.Rule != ""
		if l.EndBasis != BasisBlockedLookup && !judged {
			continue
		}
		k := key{l.Name, 0, "dns"}
		d := byKey[k]
		if d == nil {
			rule := "no rule"
			if judged {
				rule = l.Verdict.Rule
			}
			d = &Destination{Name: l.Name, Proto: "dns", Outcomes: map[string]int{}, Unexpected: true,
				Rule: rule, Reasons: []string{}}
			if l.EndBasis == BasisBlockedLookup {
				d.Reasons = append(d.Reasons, l.EndBasis)
			}
			byKey[k] = d
			ds = append(ds, d)
		}
		n := max(l.Count, 1)
		d.Calls += n
		d.Outcomes[l.Outcome] += n
		if p := proc(l.PID, l.Comm); p != "-" && !slices.Contains(d.Processes, p) && len(d.Processes) < 8 {
			d.Processes = append(d.Processes, p)
		}
		if l.Verdict != nil && d.Catalog == "" {
			d.Catalog = l.Verdict.Catalog
		}
	}
	for _, d := range ds {
		slices.Sort(d.Processes)
	}
	rank := func(d *Destination) int {
		switch {
		case d.Unexpected:
			return 0
		case d.Failed():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(ds, func(a, b *Destination) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return ds
}

// describe is one line about d for people: who called, what happened, what
// it is.
func (d *Destination) describe() string {
	var b strings.Builder
	if d.Unexpected {
		fmt.Fprintf(&b, "unexpected call to %s/%s", d.Target(), d.Proto)
	} else {
		fmt.Fprintf(&b, "call to %s/%s", d.Target(), d.Proto)
	}
	if len(d.Processes) > 0 {
		fmt.Fprintf(&b, " by %s", strings.Join(d.Processes, ", "))
	}
	fmt.Fprintf(&b, ": %s", d.OutcomeText())
	if len(d.Reasons) > 0 {
		fmt.Fprintf(&b, " (%s)", Safe(strings.Join(d.Reasons, ", ")))
	}
	if d.BlockedMS >= 1 {
		fmt.Fprintf(&b, ", blocked %s", durText(d.BlockedMS))
	}
	if d.Unexpected && d.Rule != "" {
		fmt.Fprintf(&b, "; policy: %s", Safe(d.Rule))
	}
	if d.Catalog != "" {
		fmt.Fprintf(&b, "; known phone-home: %s", Safe(d.Catalog))
	}
	return b.String()
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
	SystemOut string      `xml:"system-out,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes r as a JUnit XML report for CI systems: one test case
// per destination (Destinations), failed when the policy did not expect
// it. A report read with errors gets a suite-level error count, so a
// partial report never passes silently.
func WriteJUnit(w io.Writer, r *Report) error {
	s := junitSuite{
		Name:      "egress " + Safe(r.Source),
		Time:      secs(r.Window.DurationMS),
		SystemOut: Safe(r.Headline),
		Errors:    len(r.Errors),
	}
	if !r.Window.Start.IsZero() {
		s.Timestamp = r.Window.Start.UTC().Format("2006-01-02T15:04:05")
	}
	for _, d := range Destinations(r) {
		c := junitCase{
			Name:      d.Target() + "/" + d.Proto,
			Classname: "egress.outbound",
			Time:      secs(d.BlockedMS),
			SystemOut: d.describe(),
		}
		if d.Unexpected {
			c.Failure = &junitFailure{
				Message: d.describe(),
				Type:    "unexpected",
				Text:    failureText(d),
			}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, e := range r.Errors {
		s.SystemOut += "\nerror: " + Safe(e)
	}
	doc := junitSuites{Name: "egress", Tests: s.Tests, Failures: s.Failures, Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}

func failureText(d *Destination) string {
	var b strings.Builder
	if d.Proto == "dns" {
		fmt.Fprintf(&b, "lookup: %s\n", Safe(d.Name))
	} else {
		fmt.Fprintf(&b, "host: %s\nport: %d/%s\n", Safe(d.Name), d.Port, d.Proto)
	}
	if len(d.Processes) > 0 {
		fmt.Fprintf(&b, "process: %s\n", strings.Join(d.Processes, ", "))
	}
	fmt.Fprintf(&b, "outcome: %s\ncalls: %d\n", d.OutcomeText(), d.Calls)
	if d.Rule != "" {
		fmt.Fprintf(&b, "policy: %s\n", Safe(d.Rule))
	}
	if d.Catalog != "" {
		fmt.Fprintf(&b, "catalog: %s\n", Safe(d.Catalog))
	}
	return b.String()
}

func secs(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }
