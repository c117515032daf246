package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// End bases that egress run --block sets on what it refused.
const (
	BasisBlockedConnect = "blocked: egress run --block refused connect()/sendmsg() with EPERM"
	BasisBlockedLookup  = "blocked: egress run --block answered REFUSED (name not allowed)"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
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
// per destination (Destinations), failed exactly when Judge found that it
// fails the check (the calls behind a non-zero exit code). A case's time is
// the union of its calls' waits; the suite's is the window. Unexpected
// calls that do not fail the check (audit mode) pass and say so. A report
// read with errors gets a suite-level error count, so a partial report
// never passes silently.
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
	if c := r.Check; c != nil {
		s.SystemOut += "\n" + checkText(c)
	}
	for _, d := range Destinations(r) {
		c := junitCase{
			Name:      d.ID(),
			Classname: "egress.outbound",
			Time:      secs(d.BlockedMS),
			SystemOut: d.describe(),
		}
		if d.Proto == "dns" {
			c.Classname = "egress.lookup"
		}
		if v := d.VerdictText(); v != "" {
			c.SystemOut += "\nverdict: " + v
		}
		if d.Unexpected && d.Fails == FailNone {
			c.SystemOut += "\nnot failing: " + auditReason(r.Check)
		}
		if d.Fails != FailNone {
			c.Failure = &junitFailure{
				Message: d.describe(),
				Type:    string(d.Fails),
				Text:    failureText(d),
			}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	if s.Tests == 0 {
		// A check that saw nothing passes visibly, instead of an empty
		// suite some consumers treat as an error.
		s.Tests = 1
		s.Cases = append(s.Cases, junitCase{Name: "no outbound calls", Classname: "egress.outbound", Time: secs(0),
			SystemOut: "no egress call or failed lookup was seen in the window"})
	}
	for _, e := range r.Errors {
		s.SystemOut += "\nerror: " + Safe(e)
	}
	doc := junitSuites{Name: "egress", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: s.Time, Suites: []junitSuite{s}}
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

// checkText says in one line how the calls were judged.
func checkText(c *Check) string {
	var parts []string
	if c.Rules != "" {
		parts = append(parts, "policy "+Safe(c.Rules))
	}
	if c.Baseline != "" {
		parts = append(parts, "baseline "+Safe(c.Baseline))
	}
	if c.Rules != "" || c.Baseline != "" {
		parts = append(parts, "mode "+c.Mode)
	}
	if len(c.FailOn) > 0 {
		names := make([]string, len(c.FailOn))
		for i, o := range c.FailOn {
			names[i] = o.String()
		}
		parts = append(parts, "--fail-on "+strings.Join(names, ","))
	}
	return fmt.Sprintf("check: %s: %d destination(s) fail, %d unexpected", strings.Join(parts, ", "), c.Failed, c.Unexpected)
}

// auditReason says why an unexpected destination does not fail the check.
func auditReason(c *Check) string {
	if c != nil && c.Mode == "audit" && c.Rules != "" {
		return "audit mode reports unexpected calls without failing (egress run --mode enforce, or --fail-on unexpected, fails on them)"
	}
	return "unexpected calls fail the check with egress run --mode enforce or --fail-on unexpected"
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
	if d.RefusedBy != "" {
		fmt.Fprintf(&b, "refused by: %s\n", d.RefusedBy)
	}
	fmt.Fprintf(&b, "fails: %s\n", failsText(d.Fails))
	if d.Catalog != "" {
		fmt.Fprintf(&b, "catalog: %s\n", Safe(d.Catalog))
	}
	return b.String()
}

func secs(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }

// failsText says in words why a destination fails the check.
func failsText(f Failure) string {
	switch f {
	case FailBlocked:
		return "not allowed by the policy; egress run --block refused it"
	case FailUnexpected:
		return "not allowed by the policy"
	case FailOutcome:
		return "its outcome is one --fail-on names"
	}
	return "no"
}
