package report

import (
	"bytes"
	"encoding/xml"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

// A name from the network must not forge Markdown, workflow commands or XML.
func TestCIEscaping(t *testing.T) {
	evil := "x](http://evil.example)|<img>`\n::error::pwned"
	r := &Report{Source: "s", Connections: []Connection{
		{Host: evil, DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 443, Proto: "tcp", Outcome: Timeout, PID: ptr(7), Comm: ptr("a|b"), Count: 1,
			Verdict: &Verdict{Expected: ptr(false), Rule: "no rule"}},
		{Host: "ok.example", DstIP: netip.MustParseAddr("192.0.2.2"), DstPort: 443, Proto: "tcp", Outcome: Established, Count: 3, Verdict: &Verdict{Expected: ptr(true), Rule: "p:3"}},
		{Host: "ok.example", DstIP: netip.MustParseAddr("192.0.2.3"), DstPort: 443, Proto: "tcp", Outcome: Refused, Count: 1, Verdict: &Verdict{Expected: ptr(true), Rule: "p:3"}},
		{DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: 5432, Proto: "tcp", Outcome: Established, Loopback: true, Count: 1},
	}}
	Judge(r, Criteria{Rules: "p", Enforce: true})
	var md, gh, ju bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteGitHubAnnotations(&gh, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(&ju, r); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(gh.String()), "\n") {
		if !strings.HasPrefix(l, "::error title=egress%3A unexpected call to ") && !strings.HasPrefix(l, "::warning title=egress%3A failed call to ok.example%3A443::") {
			t.Errorf("annotation line %q: a name broke out of its command", l)
		}
	}
	if n := strings.Count(gh.String(), "\n"); n != 2 {
		t.Errorf("%d annotations, want 2 (unexpected, and the expected destination with a refused call):\n%s", n, gh.String())
	}
	// Inside a code span Markdown is literal; the span cannot be closed
	// early, the table cell cannot be split, the line cannot be broken.
	wantRow := "| ❌ | `x](http://evil.example)\\|<img>'\\x0a::error::pwned:443/tcp` | a&#124;b&#91;7&#93; | timeout | 1 | 0.000 ms | unexpected (no rule) |"
	if !strings.Contains(md.String(), wantRow+"\n") {
		t.Errorf("markdown lacks the escaped row\n%s\nin:\n%s", wantRow, md.String())
	}
	if strings.Contains(md.String(), "5432") || strings.Contains(ju.String(), "5432") {
		t.Errorf("a loopback call is listed as a destination")
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(ju.Bytes(), &doc); err != nil {
		t.Fatalf("junit does not parse: %v\n%s", err, ju.String())
	}
	type tc struct {
		Name   string
		Failed bool
	}
	var got []tc
	for _, c := range doc.Suites[0].Cases {
		got = append(got, tc{c.Name, c.Failure != nil})
	}
	want := []tc{{Safe(evil) + ":443/tcp", true}, {"ok.example:443/tcp", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("junit cases (-want +got):\n%s", diff)
	}
	ds := Destinations(r)
	if len(ds) != 2 || ds[1].Calls != 4 || ds[1].OutcomeText() != "established x3, refused" {
		t.Errorf("destinations: %+v", ds)
	}
}
