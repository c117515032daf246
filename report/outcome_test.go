package report

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOutcomeText: every outcome's name reads back to the same outcome, so
// a report written and read again (rules suggest, --baseline, diff) keeps
// its outcomes; unknown names are an error, not a silent zero.
func TestOutcomeText(t *testing.T) {
	all := []Outcome{Established, Refused, Rejected, Timeout, Pending, Aborted, Answered, NoData, NXDomain, ServFail, Sent, Mixed,
		RcodeOutcome(4), RcodeOutcome(15), RcodeOutcome(239)}
	seen := map[string]bool{}
	for _, o := range all {
		name := o.String()
		if name == "" || seen[name] {
			t.Errorf("outcome %d named %q (empty or twice)", uint8(o), name)
		}
		seen[name] = true
		back, ok := ParseOutcome(name)
		if !ok || back != o {
			t.Errorf("ParseOutcome(%q) = %d, %v; want %d", name, back, ok, o)
		}
	}
	if got := RcodeOutcome(4).String(); got != "rcode-4" {
		t.Errorf("rcode 4 named %q, want rcode-4", got)
	}
	var c Connection
	if err := json.Unmarshal([]byte(`{"outcome":"timeout"}`), &c); err != nil || c.Outcome != Timeout {
		t.Errorf("unmarshal timeout: %v, %v", c.Outcome, err)
	}
	b, err := json.Marshal(Culprit{Outcome: Mixed})
	if err != nil || !strings.Contains(string(b), `"outcome":"mixed"`) {
		t.Errorf("culprit JSON %s, %v; want outcome mixed", b, err)
	}
	for _, bad := range []string{`{"outcome":"exploded"}`, `{"outcome":"rcode-x"}`, `{"outcome":"rcode-999"}`} {
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}

func FuzzParseOutcome(f *testing.F) {
	for _, s := range []string{"timeout", "rcode-3", "rcode-", "", "mixed"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, ok := ParseOutcome(s)
		if ok && s != "" && o.String() != s && !strings.HasPrefix(s, "rcode-") {
			t.Errorf("ParseOutcome(%q) = %q", s, o)
		}
	})
}
