package baseline

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

func TestName(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		sharded  bool
	}{
		{"api.github.com", "api.github.com", false},
		{"API.GitHub.com.", "api.github.com", false},
		{"productionresultssa12.blob.core.windows.net", "productionresultssa*.blob.core.windows.net", true},
		{"pipelinesghubeus22.actions.githubusercontent.com", "*.actions.githubusercontent.com", false},
		{"rr3---sn-4g5e6nsz.googlevideo.com", "*.googlevideo.com", false},
		{"e1234.dscb.akamaiedge.net", "*.akamaiedge.net", false},
		{"cdn2.vendor.example", "cdn*.vendor.example", true},
		{"1e100.net", "1e100.net", false}, // two labels: the registrable name itself
		{"s3.amazonaws.com", "s*.amazonaws.com", true},
	} {
		got, sharded := Name(tt.in)
		if got != tt.want || sharded != tt.sharded {
			t.Errorf("Name(%q) = %q, %v; want %q, %v", tt.in, got, sharded, tt.want, tt.sharded)
		}
	}
}

func conn(host, ip string, port uint16, outcome report.Outcome, comm string) report.Connection {
	c := report.Connection{Host: host, DstPort: port, Proto: "tcp", Outcome: outcome, Count: 1,
		Start: time.Unix(100, 0), End: time.Unix(101, 0)}
	if ip != "" {
		c.DstIP = netip.MustParseAddr(ip)
	}
	if comm != "" {
		pid := 42
		c.PID, c.Comm = &pid, &comm
	}
	return c
}

// TestDiff: names match across addresses and shards; a process only one
// side knows still matches; what changed outcome is listed.
func TestDiff(t *testing.T) {
	old := FromReport("old", &report.Report{Connections: []report.Connection{
		conn("productionresultssa3.blob.core.windows.net", "203.0.113.1", 443, report.Established, "runner"),
		conn("api.vendor.test", "198.51.100.11", 443, report.Established, ""),
		conn("", "203.0.113.9", 8080, report.Established, "curl"),
		conn("gone.example", "203.0.113.2", 443, report.Established, "curl"),
	}})
	cur := FromReport("new", &report.Report{
		Connections: []report.Connection{
			conn("productionresultssa17.blob.core.windows.net", "203.0.113.77", 443, report.Established, "runner"),
			conn("api.vendor.test", "2001:db8:2::11", 443, report.Timeout, "curl"),
			conn("", "203.0.113.9", 8080, report.Established, "curl"),
			conn("", "203.0.113.9", 8080, report.Established, "wget"),
			conn("telemetry.tracker.example", "198.51.100.10", 80, report.Established, "node"),
		},
		Lookups: []report.Lookup{{Name: "nope.example.", QType: "A", Outcome: report.NXDomain, Count: 2}},
	})
	got := Diff(old, cur)
	want := []Change{
		{Kind: New, Key: Key{"203.0.113.9", 8080, "tcp", "wget"}, New: []string{"established"}},
		{Kind: New, Key: Key{"nope.example", 0, "dns", ""}, New: []string{"nxdomain"}},
		{Kind: New, Key: Key{"telemetry.tracker.example", 80, "tcp", "node"}, New: []string{"established"}},
		{Kind: Changed, Key: Key{"api.vendor.test", 443, "tcp", "curl"}, Old: []string{"established"}, New: []string{"timeout"}},
		{Kind: Gone, Key: Key{"gone.example", 443, "tcp", "curl"}, Old: []string{"established"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	if s := (Key{"2001:db8::1", 443, "tcp", ""}).String(); s != "[2001:db8::1]:443/tcp" {
		t.Errorf("Key.String = %q", s)
	}
}

// TestAllowed: a baseline's entries, as a policy, allow what the baseline
// had (shards and churning names as families, addresses by address) and
// nothing else; deny entries still win.
func TestAllowed(t *testing.T) {
	set := FromReport("old.json", &report.Report{
		Connections: []report.Connection{
			conn("productionresultssa3.blob.core.windows.net", "203.0.113.1", 443, report.Established, "runner"),
			conn("rr3---sn-4g5e6nsz.googlevideo.com", "203.0.113.3", 443, report.Established, ""),
			conn("", "203.0.113.9", 8080, report.Established, "curl"),
			conn("telemetry.vendor.test", "198.51.100.12", 443, report.Established, ""),
			conn("(other destinations)", "", 0, report.Established, ""),
		},
		Lookups: []report.Lookup{{Name: "nope.example", QType: "A", Outcome: report.NXDomain}},
	})
	allowed, skipped := set.Allowed()
	if len(skipped) != 1 || skipped[0].Name != "(other destinations)" {
		t.Errorf("skipped %v, want the folded record only", skipped)
	}
	own, err := rules.Parse("own.yaml", []byte("allow: []\ndeny:\n  - telemetry.vendor.test:443\n"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := rules.Extend(own, "baseline old.json", allowed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		d    rules.Dest
		want rules.Verdict
	}{
		{rules.Dest{Host: "productionresultssa11.blob.core.windows.net", Port: 443, Proto: "tcp", Process: "runner"}, rules.Verdict{Allowed: true, Rule: "baseline old.json"}},
		{rules.Dest{Host: "productionresultssa11.blob.core.windows.net", Port: 443, Proto: "tcp", Process: "curl"}, rules.Verdict{Rule: "no rule"}},
		{rules.Dest{Host: "productionresultssa.blob.core.windows.net", Port: 443, Proto: "tcp", Process: "runner"}, rules.Verdict{Rule: "no rule"}},
		{rules.Dest{Host: "evilresultssa1.blob.core.windows.net", Port: 443, Proto: "tcp", Process: "runner"}, rules.Verdict{Rule: "no rule"}},
		{rules.Dest{Host: "rr1---sn-abc.googlevideo.com", Port: 443, Proto: "tcp"}, rules.Verdict{Allowed: true, Rule: "baseline old.json"}},
		{rules.Dest{IP: ip("203.0.113.9"), Port: 8080, Proto: "tcp", Process: "curl"}, rules.Verdict{Allowed: true, Rule: "baseline old.json"}},
		{rules.Dest{IP: ip("203.0.113.9"), Port: 8081, Proto: "tcp", Process: "curl"}, rules.Verdict{Rule: "no rule"}},
		{rules.Dest{Host: "nope.example", Port: 443, Proto: "tcp"}, rules.Verdict{Rule: "no rule"}}, // only looked up
		{rules.Dest{Host: "telemetry.vendor.test", Port: 443, Proto: "tcp"}, rules.Verdict{Rule: "own.yaml:3"}},
	} {
		if got := pol.Check(tt.d); got != tt.want {
			t.Errorf("Check(%+v) = %+v, want %+v", tt.d, got, tt.want)
		}
	}
	// The blocker's view: the proxy forwards a name the baseline looked
	// up, and the sharded family opens for a new shard.
	if grants, denied := pol.NameGrants("nope.example"); denied || len(grants) != 1 || grants[0].Proto != "dns" {
		t.Errorf("NameGrants of a name looked up: %v, denied %v; want one dns grant", grants, denied)
	}
	if grants, denied := pol.NameGrants("productionresultssa5.blob.core.windows.net"); denied || len(grants) != 1 {
		t.Errorf("NameGrants of a new shard: %v, denied %v; want one grant", grants, denied)
	}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// FuzzBaseline: any bytes given as a baseline report give a clear error
// or a set whose entries make a valid policy and diff with themselves to
// nothing.
func FuzzBaseline(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"connections":[{"host":"productionresultssa1.blob.core.windows.net","dst_ip":"203.0.113.1","dst_port":443,"proto":"tcp","outcome":"established","count":1}],"lookups":[{"name":"x.example","outcome":"nxdomain"}]}`))
	f.Add([]byte(`{"schema_version":1,"connections":[{"host":"a*b..c","dst_ip":"::1","dst_port":0,"proto":"","outcome":"","comm":"\u0000"}]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadReport("fuzz.json", bytes.NewReader(data))
		if err != nil {
			return
		}
		s := FromReport("fuzz.json", r)
		allowed, _ := s.Allowed()
		if _, err := rules.Extend(nil, "baseline fuzz.json", allowed); err != nil {
			t.Fatalf("the baseline's entries are not a valid policy: %v", err)
		}
		if d := Diff(s, s); len(d) != 0 {
			t.Fatalf("a set differs from itself: %+v", d)
		}
	})
}
