package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden outputs under testdata/ci")

var t0 = time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

// call builds a connection from start to end (ms after t0).
func call(host, ip string, port uint16, outcome Outcome, start, end float64, comm string, pid int, v *Verdict) Connection {
	return Connection{Host: host, DstIP: netip.MustParseAddr(ip), DstPort: port, Proto: "tcp", Outcome: outcome, Count: 1, Attempts: 1,
		Start: at(start), End: at(end), BlockedMS: end - start, EndBasis: "answer", PID: ptr(pid), Comm: ptr(comm),
		NameSource: SourceDNS, SynTimesMS: []float64{0}, Verdict: v}
}

func lookup(name, qtype string, outcome Outcome, start, end float64, comm string, pid int, basis string) Lookup {
	return Lookup{Name: name, QType: qtype, Outcome: outcome, Count: 1, Attempts: 1, Start: at(start), End: at(end),
		BlockedMS: end - start, Server: netip.MustParseAddrPort("127.0.0.53:53"), Transport: "udp", EndBasis: basis, PID: ptr(pid), Comm: ptr(comm), Answers: []string{}}
}

func allowed(rule string) *Verdict { return &Verdict{Expected: ptr(true), Rule: rule} }
func denied() *Verdict             { return &Verdict{Expected: ptr(false), Rule: "no rule"} }

type scenario struct {
	name     string
	report   *Report
	criteria Criteria
	failing  []string // the destinations behind the exit code
}

// scenarios are reports as egress run and replay make them, judged as
// the CLI judges them: a clean run, an unexpected call, a --fail-on
// match, a --block refusal (the privileged run tests make the real one),
// failed lookups, and a busy job.
func scenarios() []scenario {
	win := func(r *Report, ms float64) *Report {
		r.SchemaVersion, r.Backend = SchemaVersion, "ebpf tracepoints, dns proxy"
		r.Window = Window{Start: t0, End: at(ms), DurationMS: ms}
		r.Local = Local{Basis: "any", Addresses: []string{}}
		if r.Hints == nil {
			r.Hints = []Hint{}
		}
		if r.Lookups == nil {
			r.Lookups = []Lookup{}
		}
		if r.Connections == nil {
			r.Connections = []Connection{}
		}
		return r
	}
	ss := []scenario{
		{"clean", win(&Report{Source: "run npm test", Headline: "no egress call blocked the 1.2 s window"}, 1200),
			Criteria{Rules: "allow.yaml", Enforce: true}, nil},
		{"clean-calls", win(&Report{Source: "run npm test", Headline: "no egress call blocked the 1.2 s window", Connections: []Connection{
			call("registry.npmjs.org", "198.51.100.20", 443, Established, 10, 40, "npm", 100, allowed("allow.yaml:2")),
			call("registry.npmjs.org", "198.51.100.21", 443, Established, 20, 60, "npm", 100, allowed("allow.yaml:2")),
		}}, 1200), Criteria{Rules: "allow.yaml", Enforce: true}, nil},
		{"unexpected", win(&Report{Source: "run npm test", Headline: "the 6.3 s window was blocked 3.0 s (47%) by 1 unanswered call to telemetry.tracker.example:443", Connections: []Connection{
			call("registry.npmjs.org", "198.51.100.20", 443, Established, 10, 40, "npm", 100, allowed("allow.yaml:2")),
			call("telemetry.tracker.example", "203.0.113.10", 443, Timeout, 100, 3100, "node", 101, &Verdict{Expected: ptr(false), Rule: "no rule", Catalog: "Tracker telemetry; disable with TRACKER_OFF=1"}),
			call("telemetry.tracker.example", "203.0.113.11", 443, Timeout, 150, 3150, "node", 101, &Verdict{Expected: ptr(false), Rule: "no rule", Catalog: "Tracker telemetry; disable with TRACKER_OFF=1"}),
		}}, 6300), Criteria{Rules: "allow.yaml", Enforce: true}, []string{"telemetry.tracker.example:443/tcp"}},
		{"audit", win(&Report{Source: "run npm test", Headline: "the 6.3 s window was blocked 3.0 s (47%) by 1 unanswered call to telemetry.tracker.example:443", Connections: []Connection{
			call("telemetry.tracker.example", "203.0.113.10", 443, Timeout, 100, 3100, "node", 101, denied()),
		}}, 6300), Criteria{Rules: "allow.yaml"}, nil},
		{"fail-on", win(&Report{Source: "testdata/captures/story-drop-path.pcap", Headline: "the 6.3 s window was blocked 6.0 s (95%) by 2 unanswered calls", Connections: []Connection{
			call("updates.vendor.test", "198.51.100.10", 80, Timeout, 100, 3106, "", 0, nil),
			call("api.vendor.test", "198.51.100.11", 443, Timeout, 3200, 6201, "", 0, nil),
			call("cdn.vendor.test", "198.51.100.12", 443, Established, 50, 60, "", 0, nil),
		}}, 6338), Criteria{FailOn: []Outcome{Timeout}}, []string{"api.vendor.test:443/tcp", "updates.vendor.test:80/tcp"}},
		{"block", win(&Report{Source: "run ./login.sh", Headline: "no egress call blocked the 0.4 s window", Connections: []Connection{
			call("updates.shopvendor.example", "198.18.0.1", 80, Established, 10, 12, "curl", 200, allowed("ci-shop.yaml:4")),
			func() Connection {
				c := call("", "198.51.100.10", 80, Rejected, 30, 30, "curl", 201, denied())
				c.EndBasis = BasisBlockedConnect
				return c
			}(),
		}, Lookups: []Lookup{
			lookup("telemetry.tracker.example", "A", DNSRefused, 20, 21, "curl", 202, BasisBlockedLookup),
			lookup("telemetry.tracker.example", "AAAA", DNSRefused, 20, 21.5, "curl", 202, BasisBlockedLookup),
			lookup("telemetry.tracker.example", "A", DNSRefused, 25, 25.5, "curl", 202, BasisBlockedLookup),
		}}, 400), Criteria{Rules: "ci-shop.yaml", Enforce: true}, []string{"198.51.100.10:80/tcp", "telemetry.tracker.example/dns"}},
		{"lookups", win(&Report{Source: "testdata/captures/nxdomain.pcap", Headline: "the 5.1 s window was blocked 5.0 s (98%) by 2 lookups", Lookups: []Lookup{
			lookup("updates.vendor.test", "A", NXDomain, 10, 12, "", 0, "answer"),
			lookup("updates.vendor.test", "AAAA", NXDomain, 10, 13, "", 0, "answer"),
			lookup("api.vendor.test", "A", Timeout, 100, 5100, "", 0, "resolver-timeout"),
			lookup("api.vendor.test", "AAAA", Timeout, 100, 5100, "", 0, "resolver-timeout"),
			lookup("ok.vendor.test", "A", Answered, 5, 6, "", 0, "answer"),
		}}, 5100), Criteria{FailOn: []Outcome{NXDomain, ServFail, Timeout}}, []string{"api.vendor.test/dns", "updates.vendor.test/dns"}},
	}
	// A busy job: 240 destinations, 30 of them unexpected (10 refused by
	// --block at the lookup, with resolver retries), 40 timing out.
	busy := win(&Report{Source: "run make test", Headline: "the 60.0 s window was blocked 12.0 s (20%) by 40 unanswered calls"}, 60000)
	var want []string
	for i := range 240 {
		host := fmt.Sprintf("svc%03d.internal.example", i)
		ip := fmt.Sprintf("198.18.%d.%d", i/200, i%200+1)
		v := allowed("allow.yaml:3")
		outcome, end := Established, float64(i*100+20)
		switch {
		case i%8 == 0: // 30 unexpected
			v = denied()
			want = append(want, host+":443/tcp")
		case i%6 == 1: // 40 timeouts, allowed
			outcome, end = Timeout, float64(i*100+3000)
		}
		for k := range 3 {
			busy.Connections = append(busy.Connections, call(host, ip, 443, outcome, float64(i*100+k), end+float64(k), "go", 1000+i, v))
		}
	}
	for i := range 10 {
		name := fmt.Sprintf("beacon%02d.tracker.example", i)
		for k, qt := range []string{"A", "AAAA", "A", "AAAA"} {
			busy.Lookups = append(busy.Lookups, lookup(name, qt, DNSRefused, float64(i*1000+k), float64(i*1000+k)+0.5, "go", 2000+i, BasisBlockedLookup))
		}
		want = append(want, name+"/dns")
	}
	slices.Sort(want)
	ss = append(ss, scenario{"busy", busy, Criteria{Rules: "allow.yaml", Enforce: true}, want})
	return ss
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "ci", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./report -run %s -update writes it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// TestScenarios: golden JUnit, Markdown, step summary and annotations of
// each scenario, and for every format the failures it shows are exactly
// the destinations behind the exit code (Judge's failing set).
func TestScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			r := sc.report
			var exit []string
			for _, d := range Judge(r, sc.criteria) {
				exit = append(exit, d.ID())
			}
			slices.Sort(exit)
			if !slices.Equal(exit, sc.failing) {
				t.Fatalf("Judge: failing %q, want %q", exit, sc.failing)
			}
			render := func(f func(*bytes.Buffer) error) string {
				var b bytes.Buffer
				if err := f(&b); err != nil {
					t.Fatal(err)
				}
				return b.String()
			}
			junit := render(func(b *bytes.Buffer) error { return WriteJUnit(b, r) })
			md := render(func(b *bytes.Buffer) error { return WriteMarkdown(b, r) })
			summary := render(func(b *bytes.Buffer) error {
				return WriteSummary(b, r, SummaryOptions{MaxRows: 25, Detail: "egress-report.xml"})
			})
			gh := render(func(b *bytes.Buffer) error { return WriteGitHubAnnotations(b, r) })
			js := render(func(b *bytes.Buffer) error { return WriteJSON(b, r) })
			table := render(func(b *bytes.Buffer) error { return WriteTable(b, r, TableOptions{All: true}) })
			html := render(func(b *bytes.Buffer) error { return WriteHTML(b, r) })
			golden(t, sc.name+".xml", junit)
			golden(t, sc.name+".md", md)
			golden(t, sc.name+".summary.md", summary)
			golden(t, sc.name+".annotations", gh)

			shown := map[string][]string{
				"junit":    junitFailures(t, junit),
				"markdown": matches(md, `(?m)^\| ❌ \| `+"`"+`([^`+"`"+`]+)`+"`"),
				"json":     jsonFailures(t, js),
				"html":     matches(html, `<td class="hang">FAILS</td><td>([^<]+)</td>`),
			}
			if sc.name != "busy" { // the step summary and annotations are bounded
				shown["summary"] = matches(summary, `(?m)^\| ❌ \| `+"`"+`([^`+"`"+`]+)`+"`")
				shown["annotations"] = matches(gh, `(?m)^::error title=[^:]*::(?:unexpected )?(?:call to|lookup of) (\S+?/(?:tcp|udp|dns))`)
			}
			for format, got := range shown {
				slices.Sort(got)
				got = slices.Compact(got)
				if !slices.Equal(got, sc.failing) {
					t.Errorf("%s shows failing %q, the exit code's are %q", format, got, sc.failing)
				}
			}
			// The table marks every failing call and only those.
			if n := strings.Count(table, "UNEXPECTED") + strings.Count(table, "FAILS --fail-on"); (n == 0) != (len(sc.failing) == 0) && sc.name != "audit" {
				t.Errorf("table: %d failure marks for %d failing destinations\n%s", n, len(sc.failing), table)
			}
			if sc.criteria.Rules != "" && strings.Contains(md, "no policy applied") {
				t.Errorf("markdown says no policy applied with --rules:\n%s", md)
			}
		})
	}
}

// TestBusyBounded: a busy job's annotations are the ten worst and one
// line for the rest; its step summary is bounded and names the report;
// refused names appear once, their retries counted.
func TestBusyBounded(t *testing.T) {
	var sc scenario
	for _, s := range scenarios() {
		if s.name == "busy" {
			sc = s
		}
	}
	Judge(sc.report, sc.criteria)
	var gh, sum bytes.Buffer
	if err := WriteGitHubAnnotations(&gh, sc.report); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(gh.String()), "\n")
	if len(lines) != MaxAnnotations+1 || !strings.Contains(lines[MaxAnnotations], "more destinations") {
		t.Errorf("%d annotation lines, want %d and a last line counting the rest:\n%s", len(lines), MaxAnnotations+1, gh.String())
	}
	for _, l := range lines[:MaxAnnotations] {
		if !strings.HasPrefix(l, "::error ") {
			t.Errorf("the ten worst should all fail the check: %s", l)
		}
	}
	if err := WriteSummary(&sum, sc.report, SummaryOptions{MaxRows: 25, Detail: "egress-report.xml"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(sum.String(), "\n"); n > 40 || sum.Len() > 8<<10 || !strings.Contains(sum.String(), "`egress-report.xml`") {
		t.Errorf("summary: %d lines, %d bytes; want at most 40 lines and 8 KiB naming the report file", n, sum.Len())
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, sc.report); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(md.String(), "`beacon03.tracker.example/dns`"); n != 1 {
		t.Errorf("a refused name is listed %d times, want once", n)
	}
	if !strings.Contains(md.String(), "| `beacon03.tracker.example/dns` | go&#91;2003&#93; | refused x4 |") {
		t.Errorf("the refused name's retries are not counted:\n%s", md.String())
	}
}

// TestWaitsAreUnions: a destination's time is the union of its calls'
// waits, the longest one when they overlap, never their sum.
func TestWaitsAreUnions(t *testing.T) {
	r := &Report{Connections: []Connection{
		call("a.example", "192.0.2.1", 443, Timeout, 0, 3000, "x", 1, nil),
		call("a.example", "192.0.2.1", 443, Timeout, 1000, 4000, "x", 1, nil),   // overlaps: union 4 s
		call("a.example", "192.0.2.1", 443, Timeout, 10000, 11000, "x", 1, nil), // apart: +1 s
	}}
	ds := Destinations(r)
	if len(ds) != 1 || ds[0].BlockedMS != 5000 || ds[0].LongestMS != 3000 {
		t.Fatalf("destinations %+v: want one, waited 5000 ms (the union), longest 3000 ms", ds)
	}
}

func matches(s, re string) []string {
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func junitFailures(t *testing.T, s string) []string {
	t.Helper()
	var doc struct {
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("junit: %v", err)
	}
	var out []string
	for _, su := range doc.Suites {
		for _, c := range su.Cases {
			if c.Failure != nil {
				out = append(out, c.Name)
			}
		}
		if su.Failures != len(out) || doc.Failures != len(out) {
			t.Errorf("junit counts %d/%d failures, lists %d", doc.Failures, su.Failures, len(out))
		}
	}
	return out
}

// jsonFailures reads the JSON a consumer gets and finds the failing
// destinations by their verdicts alone.
func jsonFailures(t *testing.T, s string) []string {
	t.Helper()
	var r Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("json: %v", err)
	}
	var out []string
	for _, d := range Destinations(&r) {
		if d.Fails != FailNone {
			out = append(out, d.ID())
		}
	}
	if r.Check != nil && r.Check.Failed != len(out) {
		t.Errorf("json check.failed %d, verdicts say %d", r.Check.Failed, len(out))
	}
	return out
}

// junitConsumer runs a real JUnit consumer (junitparser, Debian's
// python3-junitparser; .ci/run installs it) on a report and returns the
// failed cases it reads. Outside CI it skips when the package is missing.
func junitConsumer(t *testing.T, junit string) []string {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import junitparser").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-junitparser is missing (.ci/run installs it): %v", err)
		}
		t.Skipf("python3-junitparser not installed (apt-get install python3-junitparser): %v", err)
	}
	cmd := exec.Command(python, "testdata/junit_check.py")
	cmd.Stdin = strings.NewReader(junit)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("junitparser: %v\n%s%s", err, errb.String(), out.String())
	}
	var failed []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "FAIL" {
			failed = append(failed, f[1])
		}
	}
	slices.Sort(failed)
	return failed
}

// TestJUnitConsumer: junitparser reads every scenario's JUnit file and
// finds exactly the failures behind the exit code, with counts and times
// that agree.
func TestJUnitConsumer(t *testing.T) {
	for _, sc := range scenarios() {
		Judge(sc.report, sc.criteria)
		var b bytes.Buffer
		if err := WriteJUnit(&b, sc.report); err != nil {
			t.Fatal(err)
		}
		if got := junitConsumer(t, b.String()); !slices.Equal(got, sc.failing) {
			t.Errorf("%s: junitparser reads failures %q, the exit code's are %q", sc.name, got, sc.failing)
		}
	}
}
