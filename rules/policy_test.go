package rules

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T, path string) *Policy {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return p
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestCheck(t *testing.T) {
	const f = "testdata/shop.yaml"
	p := mustLoad(t, f)
	at := func(line string) Verdict { return Verdict{Allowed: true, Rule: f + ":" + line} }
	denied := func(line string) Verdict { return Verdict{Allowed: false, Rule: f + ":" + line} }
	noRule := Verdict{Allowed: false, Rule: "no rule"}

	tests := []struct {
		name string
		d    Dest
		want Verdict
	}{
		{"glob matches one level", Dest{Host: "api.shopvendor.example", Port: 443, Proto: "tcp"}, at("3")},
		{"glob matches deeper", Dest{Host: "a.b.shopvendor.example", Port: 80, Proto: "tcp"}, at("3")},
		{"glob does not match apex", Dest{Host: "shopvendor.example", Port: 443, Proto: "tcp"}, noRule},
		{"glob does not match lookalike", Dest{Host: "evilshopvendor.example", Port: 443, Proto: "tcp"}, noRule},
		{"glob wrong port", Dest{Host: "api.shopvendor.example", Port: 8443, Proto: "tcp"}, noRule},
		{"name case and trailing dot", Dest{Host: "API.ShopVendor.Example.", Port: 443, Proto: "TCP"}, at("3")},
		{"alias matches (CNAME chain)", Dest{Host: "cdn.example.org", Aliases: []string{"www.shopvendor.example"}, Port: 443, Proto: "tcp"}, at("3")},
		{"no name, no match by host", Dest{IP: ip("203.0.113.5"), Port: 443, Proto: "tcp"}, noRule},
		{"exact host", Dest{Host: "payments.example.com", Port: 443, Proto: "tcp"}, at("6")},
		{"exact host wrong proto", Dest{Host: "payments.example.com", Port: 443, Proto: "udp"}, noRule},
		{"exact host does not match subdomain", Dest{Host: "x.payments.example.com", Port: 443, Proto: "tcp"}, noRule},
		{"cidr v4 any port", Dest{IP: ip("198.51.100.7"), Port: 5432, Proto: "tcp"}, at("9")},
		{"cidr v4 as mapped v6", Dest{IP: ip("::ffff:198.51.100.7"), Port: 5432, Proto: "tcp"}, at("9")},
		{"cidr v4 outside", Dest{IP: ip("198.51.101.7"), Port: 5432, Proto: "tcp"}, noRule},
		{"cidr v6 range low end", Dest{IP: ip("2001:db8:100::1"), Port: 8000, Proto: "tcp"}, at("10")},
		{"cidr v6 range high end", Dest{IP: ip("2001:db8:100:ffff::1"), Port: 8100, Proto: "tcp"}, at("10")},
		{"cidr v6 single port", Dest{IP: ip("2001:db8:100::1"), Port: 9443, Proto: "tcp"}, at("10")},
		{"cidr v6 past range", Dest{IP: ip("2001:db8:100::1"), Port: 8101, Proto: "tcp"}, noRule},
		{"cidr v6 outside prefix", Dest{IP: ip("2001:db8:101::1"), Port: 8000, Proto: "tcp"}, noRule},
		{"process matches", Dest{Host: "metrics.example.net", Port: 9100, Proto: "tcp", Process: "node_exporter"}, at("12")},
		{"process differs", Dest{Host: "metrics.example.net", Port: 9100, Proto: "tcp", Process: "curl"}, noRule},
		{"process unknown", Dest{Host: "metrics.example.net", Port: 9100, Proto: "tcp"}, noRule},
		{"udp rule", Dest{Host: "ntp.example.org", Port: 123, Proto: "udp"}, at("14")},
		{"udp rule refuses tcp", Dest{Host: "ntp.example.org", Port: 123, Proto: "tcp"}, noRule},
		{"deny by host wins over glob allow", Dest{Host: "telemetry.shopvendor.example", Port: 443, Proto: "tcp"}, denied("18")},
		{"deny by cidr wins over cidr allow", Dest{IP: ip("198.51.100.66"), Port: 443, Proto: "tcp"}, denied("20")},
		{"deny by alias", Dest{Host: "t.cdn.example", Aliases: []string{"telemetry.shopvendor.example."}, Port: 443, Proto: "tcp"}, denied("18")},
		{"loopback v4 default", Dest{IP: ip("127.0.0.1"), Port: 5432, Proto: "tcp"}, Verdict{true, "loopback"}},
		{"loopback v6 default", Dest{IP: ip("::1"), Port: 6379, Proto: "tcp"}, Verdict{true, "loopback"}},
		{"resolver default", Dest{IP: ip("192.0.2.53"), Port: 53, Proto: "udp", Resolver: true}, Verdict{true, "resolver"}},
		{"non-resolver port 53 is not special", Dest{IP: ip("192.0.2.53"), Port: 53, Proto: "udp"}, noRule},
		{"nothing known", Dest{}, noRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, p.Check(tt.d)); diff != "" {
				t.Errorf("Check(%+v) (-want +got):\n%s", tt.d, diff)
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	loop := Dest{IP: ip("127.0.0.1"), Port: 5432, Proto: "tcp"}
	res := Dest{IP: ip("192.0.2.53"), Port: 53, Proto: "udp", Resolver: true}
	noRule := Verdict{false, "no rule"}
	tests := []struct {
		name      string
		policy    string
		loop, res Verdict
		extraDest *Dest
		extraWant Verdict
	}{
		{name: "allow nothing keeps defaults", policy: "allow: []\n",
			loop: Verdict{true, "loopback"}, res: Verdict{true, "resolver"},
			extraDest: &Dest{Host: "a.example.com", IP: ip("203.0.113.1"), Port: 443, Proto: "tcp"}, extraWant: noRule},
		{name: "loopback off", policy: "allow: []\nallow_loopback: false\n",
			loop: noRule, res: Verdict{true, "resolver"}},
		{name: "resolvers off", policy: "allow: []\nallow_resolvers: false\n",
			loop: Verdict{true, "loopback"}, res: noRule},
		{name: "loopback off but allowed by cidr", policy: "allow_loopback: false\nallow:\n  - cidr: 127.0.0.0/8\n",
			loop: Verdict{true, "p.yaml:3"}, res: Verdict{true, "resolver"}},
		{name: "deny wins over loopback default", policy: "allow: []\ndeny:\n  - cidr: 127.0.0.1/32\n    port: 5432\n",
			loop: Verdict{false, "p.yaml:3"}, res: Verdict{true, "resolver"}},
		{name: "deny wins over resolver default", policy: "allow: []\ndeny:\n  - cidr: 192.0.2.0/24\n",
			loop: Verdict{true, "loopback"}, res: Verdict{false, "p.yaml:3"}},
		{name: "proto any", policy: "allow:\n  - host: a.example.com\n    proto: any\n",
			loop: Verdict{true, "loopback"}, res: Verdict{true, "resolver"},
			extraDest: &Dest{Host: "a.example.com", Proto: "icmp"}, extraWant: Verdict{true, "p.yaml:2"}},
		{name: "host and cidr must both match", policy: "allow:\n  - host: a.example.com\n    cidr: 203.0.113.0/24\n",
			loop: Verdict{true, "loopback"}, res: Verdict{true, "resolver"},
			extraDest: &Dest{Host: "a.example.com", IP: ip("198.51.100.1"), Port: 443, Proto: "tcp"}, extraWant: noRule},
		{name: "ports rule never matches port 0", policy: "allow:\n  - host: a.example.com\n    port: 443\n",
			loop: Verdict{true, "loopback"}, res: Verdict{true, "resolver"},
			extraDest: &Dest{Host: "a.example.com", Proto: "icmp"}, extraWant: noRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.policy))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.loop, p.Check(loop)); diff != "" {
				t.Errorf("loopback (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.res, p.Check(res)); diff != "" {
				t.Errorf("resolver (-want +got):\n%s", diff)
			}
			if tt.extraDest != nil {
				if diff := cmp.Diff(tt.extraWant, p.Check(*tt.extraDest)); diff != "" {
					t.Errorf("Check(%+v) (-want +got):\n%s", *tt.extraDest, diff)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   []string
	}{
		{"unknown top-level key with typo", "allow: []\nalow_loopback: false\n",
			[]string{`f.yaml:2: unknown top-level key "alow_loopback" (did you mean allow_loopback?)`}},
		{"unknown entry key with typo", "allow:\n  - host: a.example.com\n    procces: php-fpm\n",
			[]string{`f.yaml:3: unknown entry key "procces" (did you mean process?)`}},
		{"unknown entry key far from any", "allow:\n  - host: a.example.com\n    weight: 3\n",
			[]string{`f.yaml:3: unknown entry key "weight" (known keys: host, cidr, port, ports, proto, process, comment)`}},
		{"bad cidr", "allow:\n  - cidr: 198.51.100.0/33\n",
			[]string{`f.yaml:2: cidr "198.51.100.0/33" is not an address/length (write e.g. 198.51.100.0/24 or 2001:db8::/32)`}},
		{"cidr without length", "allow:\n  - cidr: 2001:db8::1\n",
			[]string{`f.yaml:2: cidr "2001:db8::1" has no prefix length (write 2001:db8::1/128 for one address)`}},
		{"cidr with host bits", "allow:\n  - cidr: 198.51.100.7/24\n",
			[]string{`f.yaml:2: cidr "198.51.100.7/24" has bits set past the prefix length (did you mean 198.51.100.0/24?)`}},
		{"port out of range", "allow:\n  - host: a.example.com\n    port: 70000\n",
			[]string{`f.yaml:3: port 70000 is not a number from 1 to 65535`}},
		{"port zero", "allow:\n  - host: a.example.com\n    ports: [0]\n",
			[]string{`f.yaml:3: port 0 is not a number from 1 to 65535`}},
		{"backwards range", "allow:\n  - host: a.example.com\n    ports:\n      - 443\n      - \"8100-8000\"\n",
			[]string{`f.yaml:5: port range "8100-8000" runs backwards (write "8000-8100")`}},
		{"range not numbers", "allow:\n  - host: a.example.com\n    ports: [\"http\"]\n",
			[]string{`f.yaml:3: port "http" is not a number or range (write e.g. 443 or "8000-8100")`}},
		{"ports not a list", "allow:\n  - host: a.example.com\n    ports: 443\n",
			[]string{`f.yaml:3: ports must be a list like [80, 443], not the number 443 (use port: for one)`}},
		{"port and ports", "allow:\n  - host: a.example.com\n    port: 80\n    ports: [443]\n",
			[]string{`f.yaml:4: both port and ports are set (use one)`}},
		{"wrong type for host", "allow:\n  - host: [a.example.com]\n",
			[]string{`f.yaml:2: host must be a string, not a list (quote it)`}},
		{"wrong type for bool", "allow: []\nallow_loopback: \"no\"\n",
			[]string{`f.yaml:2: allow_loopback must be true or false, not "no"`}},
		{"allow not a list", "allow:\n  host: a.example.com\n",
			[]string{`f.yaml:2: allow must be a list of entries, not a mapping (start each entry with "- ")`}},
		{"allow empty value", "allow:\n",
			[]string{`f.yaml:1: allow has no list (write allow: [] for none, or entries starting with "- " indented below it)`}},
		{"entry without host or cidr", "allow:\n  - ports: [443]\n",
			[]string{`f.yaml:2: allow entry has neither host nor cidr (add one; an entry with only ports would match any destination)`}},
		{"bad proto", "allow:\n  - host: a.example.com\n    proto: icmp\n",
			[]string{`f.yaml:3: proto "icmp" is not tcp, udp or any`}},
		{"process too long", "allow:\n  - host: a.example.com\n    process: php-fpm-worker-pool\n",
			[]string{`f.yaml:3: process "php-fpm-worker-pool" is longer than 15 bytes; the kernel truncates command names (use "php-fpm-worker-")`}},
		{"glob in the middle", "allow:\n  - host: api.*.example.com\n",
			[]string{`f.yaml:2: host "api.*.example.com" has a * that is not a leading "*." (only globs like *.example.com are supported)`}},
		{"lone star", "allow:\n  - host: \"*\"\n",
			[]string{`f.yaml:2: host "*" matches every name (list the names, or use cidr: 0.0.0.0/0 and cidr: ::/0 to allow everything)`}},
		{"ip as host", "allow:\n  - host: 198.51.100.7\n",
			[]string{`f.yaml:2: host "198.51.100.7" is an IP address (use cidr: 198.51.100.7/32)`}},
		{"bad host character", "allow:\n  - host: shop vendor.example\n",
			[]string{`f.yaml:2: host "shop vendor.example" has the character ' ' (names use letters, digits, - and _)`}},
		{"repeated key", "allow:\n  - host: a.example.com\n    host: b.example.com\n",
			[]string{`f.yaml:3: host is repeated (first at line 2; keep one)`}},
		{"missing allow", "deny:\n  - host: a.example.com\n",
			[]string{`f.yaml:1: no allow list (add allow: with the destinations the app may reach; allow: [] allows nothing)`}},
		{"empty file", "",
			[]string{`f.yaml:1: policy is empty (add an allow: list; allow: [] allows nothing)`}},
		{"not a mapping", "- host: a.example.com\n",
			[]string{`f.yaml:1: policy is a list, not a mapping (start with allow:)`}},
		{"yaml syntax (scanner)", "allow:\n  - host: a.example.com\n    port: 443: 80\n",
			[]string{`f.yaml:3: YAML syntax: mapping values are not allowed in this context (check indentation and quoting)`}},
		{"yaml syntax (parser)", "allow:\n  - host: a.example.com\n bad: 1\n",
			[]string{`f.yaml:3: YAML syntax: did not find expected key (check indentation and quoting)`}},
		{"unclosed flow mapping", "allow:\n  - host: a\n\n\n  - {host: b\n",
			[]string{`f.yaml:5: YAML syntax: did not find expected ',' or '}' (check indentation and quoting)`}},
		{"tab indentation", "allow:\n\t- host: a.example.com\n",
			[]string{`f.yaml:2: YAML syntax: found character that cannot start any token (check indentation and quoting)`}},
		{"control character", "allow: []\n# note\x01\n",
			[]string{`f.yaml:2: control character U+0001 (remove it)`}},
		{"invalid utf-8", "allow: []\n\n# caf\xe9\n",
			[]string{`f.yaml:3: invalid UTF-8 (save the file as UTF-8)`}},
		{"alias", "allow:\n  - &a {host: a.example.com}\n  - *a\n",
			[]string{`f.yaml:3: YAML aliases are not supported (write the entry out)`}},
		{"second document", "allow: []\n---\nallow: []\n",
			[]string{`f.yaml:2: a second YAML document starts here (keep one policy per file)`}},
		{"several mistakes reported together",
			"allow:\n  - host: a.example.com\n    port: 0\n  - cidr: 10.0.0.1/8\n  - host: b.example.com\n    proto: sctp\ndeny:\n  - hots: c.example.com\n",
			[]string{
				`f.yaml:3: port 0 is not a number from 1 to 65535`,
				`f.yaml:4: cidr "10.0.0.1/8" has bits set past the prefix length (did you mean 10.0.0.0/8?)`,
				`f.yaml:6: proto "sctp" is not tcp, udp or any`,
				`f.yaml:8: unknown entry key "hots" (did you mean host?)`,
				`f.yaml:8: deny entry has neither host nor cidr (add one; an entry with only ports would match any destination)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("f.yaml", []byte(tt.policy))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tt.want)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with errors")
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error is %T, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("allow:\n  - cidr: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:2: cidr "nope" is not an address/length (write e.g. 198.51.100.0/24 or 2001:db8::/32)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/shop.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(Suggest([]Dest{{Host: "a.example.com", Port: 443, Proto: "tcp", Process: "php-fpm"}, {IP: ip("2001:db8::1"), Port: 53, Proto: "udp"}}))
	f.Add([]byte("allow:\n  - &a {host: a.example.com}\n  - *a\n"))
	f.Add([]byte("allow: [{cidr: 198.51.100.0/24, ports: [\"1-65535\"]}]\nallow_resolvers: false\n"))
	f.Add([]byte("allow: []\n---\n"))
	f.Add([]byte("allow:\n  - api.github.com:443\n  - \"[2001:db8::/32]:1-2\"\n  - 198.51.100.0/24:8000-8100\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse returned policy %v and error %v", p != nil, err)
		}
		if err != nil {
			for _, e := range err.(Errors) {
				if e.Line < 1 || e.File != "fuzz.yaml" {
					t.Fatalf("error without a position: %+v", e)
				}
			}
			return
		}
		p.Check(Dest{Host: "a.example.com", IP: ip("198.51.100.1"), Port: 443, Proto: "tcp"})
	})
}

// TestDocExample keeps the policy example in docs/rules.md valid.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/rules.md")
	}
	p, err := Parse("docs/rules.md", []byte(example))
	if err != nil {
		t.Fatalf("documented example does not parse:\n%v", err)
	}
	if v := p.Check(Dest{Host: "telemetry.shopvendor.example", Port: 443, Proto: "tcp"}); v.Allowed {
		t.Errorf("documented deny does not deny: %+v", v)
	}
}
