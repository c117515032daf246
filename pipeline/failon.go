package pipeline

import (
	"fmt"
	"strings"

	"github.com/egress-dev/egress/report"
)

// failOutcomes maps each --fail-on value to the outcomes it names.
var failOutcomes = map[string][]string{
	"timeout":  {report.Timeout},
	"pending":  {report.Pending},
	"refused":  {report.Refused},
	"rejected": {report.Rejected},
	"aborted":  {report.Aborted},
	"nxdomain": {report.NXDomain},
	"servfail": {report.ServFail},
	"failed":   {report.Timeout, report.Pending, report.Refused, report.Rejected, report.Aborted, report.NXDomain, report.ServFail},
	// "unexpected" is not an outcome: a call the --rules policy does not allow.
	"unexpected": nil,
}

// FailOn is what --fail-on names: the outcomes, and unexpected calls.
type FailOn struct {
	outcomes   map[string]bool
	unexpected bool
}

// ParseFailOn reads the --fail-on values; haveRules says whether a policy
// was given (unexpected needs one).
func ParseFailOn(values []string, haveRules bool) (FailOn, error) {
	f := FailOn{outcomes: map[string]bool{}}
	for _, v := range values {
		outs, ok := failOutcomes[v]
		if !ok {
			return FailOn{}, fmt.Errorf("unknown --fail-on value %q: use one of timeout, pending, refused, rejected, aborted, nxdomain, servfail, failed, unexpected", v)
		}
		if v == "unexpected" {
			if !haveRules {
				return FailOn{}, fmt.Errorf("--fail-on unexpected needs --rules FILE (the allowlist that says what is expected)")
			}
			f.unexpected = true
		}
		for _, o := range outs {
			f.outcomes[o] = true
		}
	}
	return f, nil
}

// Findings lists the calls of r that f names, one line each. Loopback
// connections are never findings.
func (f FailOn) Findings(r *report.Report) []string {
	var out []string
	for _, c := range r.Connections {
		if c.Loopback {
			continue
		}
		if f.outcomes[c.Outcome] {
			out = append(out, fmt.Sprintf("%s %s:%d", c.Outcome, orIP(c.Host, c.DstIP), c.DstPort))
		}
		if f.unexpected && c.Verdict != nil && !c.Verdict.Expected {
			out = append(out, fmt.Sprintf("unexpected %s:%d", orIP(c.Host, c.DstIP), c.DstPort))
		}
	}
	for _, l := range r.Lookups {
		if f.outcomes[l.Outcome] {
			out = append(out, fmt.Sprintf("%s lookup %s %s", l.Outcome, l.Name, l.QType))
		}
	}
	return out
}

func orIP(host, ip string) string {
	if host != "" {
		return report.Safe(host)
	}
	return ip
}

// Summarise is the one line that says what --fail-on matched.
func Summarise(findings []string) string {
	s := strings.Join(findings, "; ")
	if len(findings) > 5 {
		s = strings.Join(findings[:5], "; ") + fmt.Sprintf("; and %d more", len(findings)-5)
	}
	return fmt.Sprintf("--fail-on matched %d call(s): %s", len(findings), s)
}
