package rules

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOneLine: "- host:port" beside the full form means the same entry,
// and the deciding entry's FILE:LINE is its own line.
func TestOneLine(t *testing.T) {
	p, err := Parse("ci.yaml", []byte(`allow:
  - api.github.com:443
  - "*.actions.githubusercontent.com:443"
  - host: registry.npmjs.org
    port: 443
  - 198.51.100.0/24:8000-8100
  - "[2001:db8:100::/48]:9443"
deny:
  - telemetry.example.com:443
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		d    Dest
		want Verdict
	}{
		{Dest{Host: "api.github.com", Port: 443, Proto: "tcp"}, Verdict{true, "ci.yaml:2"}},
		{Dest{Host: "api.github.com", Port: 443, Proto: "udp"}, Verdict{true, "ci.yaml:2"}}, // any protocol
		{Dest{Host: "api.github.com", Port: 80, Proto: "tcp"}, Verdict{false, "no rule"}},
		{Dest{Host: "pipelines.actions.githubusercontent.com", Port: 443, Proto: "tcp"}, Verdict{true, "ci.yaml:3"}},
		{Dest{Host: "actions.githubusercontent.com", Port: 443, Proto: "tcp"}, Verdict{false, "no rule"}},
		{Dest{Host: "registry.npmjs.org", Port: 443, Proto: "tcp"}, Verdict{true, "ci.yaml:4"}},
		{Dest{IP: ip("198.51.100.9"), Port: 8050, Proto: "tcp"}, Verdict{true, "ci.yaml:6"}},
		{Dest{IP: ip("198.51.100.9"), Port: 8101, Proto: "tcp"}, Verdict{false, "no rule"}},
		{Dest{IP: ip("2001:db8:100::7"), Port: 9443, Proto: "tcp"}, Verdict{true, "ci.yaml:7"}},
		{Dest{Host: "telemetry.example.com", Port: 443, Proto: "tcp"}, Verdict{false, "ci.yaml:9"}},
	} {
		if got := p.Check(tt.d); got != tt.want {
			t.Errorf("Check(%+v) = %+v, want %+v", tt.d, got, tt.want)
		}
	}
}

func TestOneLineErrors(t *testing.T) {
	for _, tt := range []struct {
		name, policy string
		want         []string
	}{
		{"no port", "allow:\n  - api.github.com\n",
			[]string{`f.yaml:2: allow entry "api.github.com" has no port (write host:port, e.g. api.github.com:443, or the full form - host: api.github.com to allow any port)`}},
		{"bad port", "allow:\n  - api.github.com:https\n",
			[]string{`f.yaml:2: port "https" is not a number or range (write e.g. 443 or "8000-8100")`}},
		{"port out of range", "allow:\n  - api.github.com:70000\n",
			[]string{`f.yaml:2: port "70000" is not a number or range (write e.g. 443 or "8000-8100")`}},
		{"space after the colon", "allow:\n  - api.github.com: 443\n",
			[]string{`f.yaml:2: unknown entry key "api.github.com" (for the one-line form write api.github.com:PORT with no space after the colon)`,
				`f.yaml:2: allow entry has neither host nor cidr (add one; an entry with only ports would match any destination)`}},
		{"empty port", "allow:\n  - \"api.github.com:\"\n",
			[]string{`f.yaml:2: allow entry "api.github.com:" has an empty port (write e.g. api.github.com:443)`}},
		{"no host", "allow:\n  - :443\n",
			[]string{`f.yaml:2: allow entry ":443" has no host before the port (write e.g. api.example.com:443)`}},
		{"bare IPv6", "allow:\n  - 2001:db8::/32:443\n",
			[]string{`f.yaml:2: allow entry "2001:db8::/32:443": put an IPv6 cidr in brackets, e.g. [2001:db8::/32]:443`}},
		{"address as host", "allow:\n  - 198.51.100.7:443\n",
			[]string{`f.yaml:2: host "198.51.100.7" is an IP address (use cidr: 198.51.100.7/32)`}},
		{"bad glob", "deny:\n  - \"api.*.example.com:443\"\nallow: []\n",
			[]string{`f.yaml:2: host "api.*.example.com" has a * that is not a leading "*." (only globs like *.example.com are supported)`}},
		{"cidr host bits, second entry", "allow:\n  - a.example.com:443\n  - 198.51.100.7/24:443\n",
			[]string{`f.yaml:3: cidr "198.51.100.7/24" has bits set past the prefix length (did you mean 198.51.100.0/24?)`}},
		{"a number", "allow:\n  - 443\n",
			[]string{`f.yaml:2: allow entry is the number 443, not a mapping or host:port (write e.g. - api.example.com:443 or - host: api.example.com)`}},
	} {
		_, err := Parse("f.yaml", []byte(tt.policy))
		var got []string
		if errs, ok := err.(Errors); ok {
			for _, e := range errs {
				got = append(got, e.Error())
			}
		} else if err != nil {
			got = []string{err.Error()}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}
