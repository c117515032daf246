package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSuggestGolden(t *testing.T) {
	dests := []Dest{
		{Host: "api.shopvendor.example", IP: ip("198.51.100.10"), Port: 443, Proto: "tcp", Process: "php-fpm"},
		{Host: "API.shopvendor.example.", IP: ip("198.51.100.11"), Port: 443, Proto: "tcp", Process: "php-fpm"},
		{Host: "api.shopvendor.example", IP: ip("198.51.100.10"), Port: 80, Proto: "tcp", Process: "php-fpm"},
		{Host: "api.shopvendor.example", IP: ip("198.51.100.10"), Port: 443, Proto: "tcp", Process: "curl"},
		{IP: ip("203.0.113.9"), Port: 8443, Proto: "tcp"},
		{IP: ip("2001:db8::9"), Port: 123, Proto: "udp"},
		{IP: ip("::ffff:192.0.2.1"), Proto: "icmp"},
		{IP: ip("127.0.0.1"), Port: 5432, Proto: "tcp"},
		{IP: ip("192.0.2.53"), Port: 53, Proto: "udp", Resolver: true},
		{Host: "bad name.example", IP: ip("203.0.113.77"), Port: 443, Proto: "tcp", Process: "bad\x01comm"},
		{Host: "only-name.example", Port: 443, Proto: "tcp"},
		{Host: "not a name"},
	}
	want := `# Starter egress policy written from observed calls. Review before use:
# every entry below was seen; nothing else is allowed. See docs/rules.md.
allow_loopback: true
allow_resolvers: true
allow:
  # 1 call seen
  - host: "api.shopvendor.example"
    ports: [443]
    proto: tcp
    process: "curl"
  # 3 calls seen
  - host: "api.shopvendor.example"
    ports: [80, 443]
    proto: tcp
    process: "php-fpm"
  # 1 call seen
  - host: "only-name.example"
    ports: [443]
    proto: tcp
  # 1 call seen
  - cidr: "192.0.2.1/32"
  # 1 call seen
  - cidr: "203.0.113.9/32"
    ports: [8443]
    proto: tcp
  # 1 call seen
  - cidr: "203.0.113.77/32"
    ports: [443]
    proto: tcp
  # 1 call seen
  - cidr: "2001:db8::9/128"
    ports: [123]
    proto: udp
# 1 call(s) had neither a usable name nor an address and are not covered.
`
	got := string(Suggest(dests))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Suggest (-want +got):\n%s", diff)
	}
	checkAllowed(t, dests[:len(dests)-1], []byte(got))
	if _, err := Parse("empty.yaml", Suggest(nil)); err != nil {
		t.Errorf("Suggest(nil) does not parse: %v", err)
	}
}

// checkAllowed parses a suggested policy and checks that each dest is allowed.
func checkAllowed(t *testing.T, dests []Dest, policy []byte) {
	t.Helper()
	p, err := Parse("suggested.yaml", policy)
	if err != nil {
		t.Fatalf("suggested policy does not parse: %v\n%s", err, policy)
	}
	for _, d := range dests {
		if v := p.Check(d); !v.Allowed {
			t.Errorf("suggested policy refuses %+v (%s)\n%s", d, v.Rule, policy)
		}
	}
}

func TestSuggestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"", "a.example.com", "B.example.com.", "c.d.example.org", "x_y.example.net", "198.51.100.3", "*.example.com"}
	procs := []string{"", "php-fpm", "node", "python3", "java\"q", "ü-tool", "a\\b"}
	protos := []string{"tcp", "udp", "icmp", "TCP", ""}
	for round := range 200 {
		var dests []Dest
		for range 1 + r.IntN(30) {
			var a netip.Addr
			switch r.IntN(4) {
			case 0:
				a = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(4))})
			case 1:
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(4))})
			case 2:
				a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			dests = append(dests, Dest{
				Host:     hosts[r.IntN(len(hosts))],
				IP:       a,
				Port:     uint16(r.IntN(3) * 443),
				Proto:    protos[r.IntN(len(protos))],
				Process:  procs[r.IntN(len(procs))],
				Resolver: r.IntN(10) == 0,
			})
		}
		var covered []Dest // a dest with neither a usable name nor an address cannot be covered
		for _, d := range dests {
			if _, err := parsePattern(d.Host); (d.Host != "" && err == nil && d.Host[0] != '*') || d.IP.IsValid() || d.Resolver {
				covered = append(covered, d)
			}
		}
		t.Run(fmt.Sprint(round), func(t *testing.T) { checkAllowed(t, covered, Suggest(dests)) })
	}
}

// TestSuggestNarrow checks that a suggested policy allows nothing beyond what
// was seen: other hosts, ports, protocols, processes and neighbouring
// addresses are refused.
func TestSuggestNarrow(t *testing.T) {
	seen := []Dest{
		{Host: "a.example.com", Port: 443, Proto: "tcp", Process: "php-fpm"},
		{IP: ip("203.0.113.9"), Port: 8443, Proto: "tcp"},
		{IP: ip("2001:db8::9"), Port: 123, Proto: "udp"},
	}
	p, err := Parse("s.yaml", Suggest(seen))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Dest{
		{Host: "b.example.com", Port: 443, Proto: "tcp", Process: "php-fpm"},
		{Host: "x.a.example.com", Port: 443, Proto: "tcp", Process: "php-fpm"},
		{Host: "a.example.com", Port: 80, Proto: "tcp", Process: "php-fpm"},
		{Host: "a.example.com", Port: 443, Proto: "udp", Process: "php-fpm"},
		{Host: "a.example.com", Port: 443, Proto: "tcp", Process: "curl"},
		{IP: ip("203.0.113.10"), Port: 8443, Proto: "tcp"},
		{IP: ip("203.0.113.9"), Port: 8443, Proto: "udp"},
		{IP: ip("2001:db8::8"), Port: 123, Proto: "udp"},
	} {
		if v := p.Check(d); v.Allowed {
			t.Errorf("suggested policy allows unseen %+v (%s)", d, v.Rule)
		}
	}
}

func FuzzSuggest(f *testing.F) {
	f.Add("a.example.com", []byte{203, 0, 113, 1}, uint16(443), "tcp", "php-fpm")
	f.Add("", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(0), "icmp", "ü\x00")
	f.Fuzz(func(t *testing.T, host string, addr []byte, port uint16, proto, process string) {
		a, _ := netip.AddrFromSlice(addr)
		d := Dest{Host: host, IP: a, Port: port, Proto: proto, Process: process}
		p, err := Parse("s.yaml", Suggest([]Dest{d}))
		if err != nil {
			t.Fatalf("suggested policy does not parse: %v", err)
		}
		if _, perr := parsePattern(host); (host != "" && perr == nil) || a.IsValid() {
			if v := p.Check(d); !v.Allowed && !(perr == nil && host[0] == '*' && !a.IsValid()) {
				t.Errorf("suggested policy refuses %+v", d)
			}
		}
	})
}
