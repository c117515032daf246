package rules

import (
	"net/netip"
	"testing"

	"github.com/egress-dev/egress/report"
)

// TestAnnotate: connections are judged by the policy and labelled by the
// catalog; lookups are only labelled.
func TestAnnotate(t *testing.T) {
	pol, err := Parse("allow.yaml", []byte("allow:\n  - host: \"*.vendor.test\"\n    ports: [443]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r := &report.Report{
		Connections: []report.Connection{
			{Host: "api.vendor.test", DstIP: netip.MustParseAddr("198.51.100.11"), DstPort: 443, Proto: "tcp"},
			{Host: "api.vendor.test", DstIP: netip.MustParseAddr("198.51.100.11"), DstPort: 80, Proto: "tcp"},
			{Host: "api.wordpress.org", DstIP: netip.MustParseAddr("203.0.113.5"), DstPort: 443, Proto: "tcp"},
		},
		Lookups: []report.Lookup{{Name: "api.wordpress.org", QType: "A", Server: netip.MustParseAddrPort("192.0.2.53:53")}},
	}
	if n := Annotate(r, pol, cat); n != 2 {
		t.Errorf("Annotate counted %d unexpected calls, want 2 (port 80, and WordPress)", n)
	}
	want := []bool{true, false, false}
	for i, c := range r.Connections {
		if c.Verdict == nil || c.Verdict.Expected == nil || *c.Verdict.Expected != want[i] {
			t.Errorf("connection %d (%s:%d): verdict %+v, want expected=%v", i, c.Host, c.DstPort, c.Verdict, want[i])
		}
	}
	if v := r.Connections[2].Verdict; v == nil || v.Catalog == "" {
		t.Errorf("the WordPress call carries no catalog label: %+v", v)
	}
	if v := r.Lookups[0].Verdict; v == nil || v.Expected != nil || v.Catalog == "" {
		t.Errorf("lookup verdict %+v, want a catalog label and no judgement", v)
	}
	// Without a policy nothing is judged: the verdict carries the label
	// only, and is absent for a call the catalog does not know.
	r.Connections[0].Verdict, r.Connections[2].Verdict = nil, nil
	Annotate(r, nil, cat)
	if v := r.Connections[0].Verdict; v != nil {
		t.Errorf("no policy: verdict %+v for an uncatalogued call, want none", v)
	}
	if v := r.Connections[2].Verdict; v == nil || v.Expected != nil || v.Catalog == "" {
		t.Errorf("no policy: verdict %+v for WordPress, want the label and no expected", v)
	}
}
