package rules

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGrants(t *testing.T) {
	pol, err := Parse("p.yaml", []byte(`allow_resolvers: false
allow:
  - host: "*.shopvendor.example"
    ports: [80, 443-445]
  - cidr: 198.51.100.0/24
    proto: udp
  - host: api.shopvendor.example
    process: curl
deny:
  - host: bad.shopvendor.example
  - host: half.shopvendor.example
    ports: [80]
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names      []string
		want       []Grant
		wantDenied bool
	}{
		{[]string{"api.shopvendor.example"}, []Grant{
			{Ports: []PortRange{{80, 80}, {443, 445}}, Rule: "p.yaml:3"},
			{Rule: "p.yaml:7"}}, false},
		{[]string{"cdn.example.net", "EDGE.shopvendor.example."}, []Grant{{Ports: []PortRange{{80, 80}, {443, 445}}, Rule: "p.yaml:3"}}, false},
		{[]string{"shopvendor.example"}, nil, false},
		{[]string{"bad.shopvendor.example"}, nil, true},
		// A deny entry with a port condition does not refuse the name.
		{[]string{"half.shopvendor.example"}, []Grant{{Ports: []PortRange{{80, 80}, {443, 445}}, Rule: "p.yaml:3"}}, false},
	}
	for _, tt := range tests {
		got, denied := pol.NameGrants(tt.names...)
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" || denied != tt.wantDenied {
			t.Errorf("NameGrants(%q) denied=%v (want %v), grants (-want +got):\n%s", tt.names, denied, tt.wantDenied, diff)
		}
	}
	wantAddr := []Grant{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Proto: "udp", Rule: "p.yaml:5"},
	}
	if diff := cmp.Diff(wantAddr, pol.AddrGrants(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("AddrGrants (-want +got):\n%s", diff)
	}
	if lo, res := pol.Defaults(); !lo || res {
		t.Errorf("Defaults = %v, %v; want true, false", lo, res)
	}
	if a, d := pol.Counts(); a != 3 || d != 2 {
		t.Errorf("Counts = %d, %d; want 3, 2", a, d)
	}
}
