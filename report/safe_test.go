package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"updates.vendor.test", "updates.vendor.test"},
		{"evil\x1b[2J.example", `evil\x1b[2J.example`},
		{"a\nb\rc\td", `a\x0ab\x0dc\x09d`},
		{"bidi\u202eexe.txt", `bidi\u{202e}exe.txt`},
		{"c1\u009bcontrol", `c1\x9bcontrol`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"münchen.de", "münchen.de"},
	}
	for _, tc := range tests {
		if got := Safe(tc.in); got != tc.want {
			t.Errorf("Safe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestTableHasNoEscapes: whatever a capture claims as names or process
// names, the table sent to a terminal carries no control characters.
func TestTableHasNoEscapes(t *testing.T) {
	pid, comm := 7, "php\x1b]0;pwned\x07"
	r := &Report{
		Headline: "the 1 s window was blocked \x1b[31m1 s",
		Connections: []Connection{{
			PID: &pid, Comm: &comm, Host: "\x1b[1mevil.example", NameSource: SourceSNI,
			DstIP: netip.MustParseAddr("203.0.113.9"), DstPort: 443, Outcome: Timeout, Attempts: 3, Count: 1,
		}},
		Lookups: []Lookup{{Name: "x\x1bc.example", QType: "A", Server: netip.MustParseAddrPort("192.0.2.53:53"), Outcome: Answered, Count: 1}},
		Hints:   []Hint{{Kind: "k", Text: "hint \x1b[2J"}},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, r, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07\r") {
		t.Errorf("table output carries control characters:\n%q", out)
	}
	for _, want := range []string{`\x1b[1mevil.example`, `php\x1b]0;pwned\x07[7]`} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not show %q escaped:\n%s", want, out)
		}
	}
}
