//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// storyCase is one variant of the phone-home story.
type storyCase struct {
	name      string
	dns       []string // dnsd arguments
	appNft    string   // nftables ruleset of the app namespace ("" none)
	vendorNft string   // nftables ruleset of the vendor namespace
	// stub runs a caching stub resolver (dnsmasq on 127.0.0.53) in the app
	// namespace, as systemd-resolved would: the app asks it over loopback and
	// it asks the real server, so the names come from the stub's upstream
	// answers, joined to the app's connects by address.
	stub bool
	// check inspects the live report; shop is the web app's pid.
	check func(t *testing.T, r *report.Report, shop int)
}

// connectTimeout is the web app's connect timeout in these tests.
const connectTimeout = 2 * time.Second

// vendorCalls returns the report's connections to the vendor's port 80
// (the update check, from the web app) and 443 (the license check, from
// its curl child), failing when either is missing.
func vendorCalls(t *testing.T, r *report.Report) (check, license report.Connection) {
	t.Helper()
	var n80, n443 int
	for _, c := range r.Connections {
		switch c.DstPort {
		case 80:
			check, n80 = c, n80+1
		case 443:
			license, n443 = c, n443+1
		}
	}
	if n80 != 1 || n443 != 1 {
		t.Fatalf("want one call to port 80 and one to 443, got %d and %d: %s", n80, n443, connList(r))
	}
	return check, license
}

func connList(r *report.Report) string {
	var b strings.Builder
	for _, c := range r.Connections {
		fmt.Fprintf(&b, "\n  %s %s:%d %s blocked %.0f ms pid %v comm %v", c.Host, c.DstIP, c.DstPort, c.Outcome, c.BlockedMS, deref(c.PID), deref(c.Comm))
	}
	for _, l := range r.Lookups {
		fmt.Fprintf(&b, "\n  lookup %s %s %s attempts %d pid %v comm %v", l.Name, l.QType, l.Outcome, l.Attempts, deref(l.PID), deref(l.Comm))
	}
	return b.String()
}

// keepForDebug copies a failed case's capture where a person can open it.
func keepForDebug(t *testing.T, path string) {
	dst := filepath.Join(os.TempDir(), "egress-"+strings.ReplaceAll(t.Name(), "/", "-")+".pcapng")
	if b, err := os.ReadFile(path); err == nil && os.WriteFile(dst, b, 0o644) == nil {
		t.Logf("capture kept in %s", dst)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// checkProcs asserts the check came from the web app itself and the
// license check from a curl child of it.
func checkProcs(t *testing.T, check, license report.Connection, shop int) {
	t.Helper()
	if check.PID == nil || *check.PID != shop || check.Comm == nil || *check.Comm != "shopapp" {
		t.Errorf("update check made by pid %v comm %v, want the web app (pid %d, shopapp)", deref(check.PID), deref(check.Comm), shop)
	}
	if license.PID == nil || *license.PID == shop || license.Comm == nil || *license.Comm != "curl" {
		t.Errorf("license check made by pid %v comm %v, want its curl child", deref(license.PID), deref(license.Comm))
	}
}

func checkNames(t *testing.T, check, license report.Connection) {
	t.Helper()
	if check.Host != "updates.vendor.test" || !strings.HasSuffix(license.Host, "vendor.test") || license.Host == "" {
		t.Errorf("hosts %q and %q, want updates.vendor.test and api.vendor.test (or its CNAME target)", check.Host, license.Host)
	}
}

// checkLookupProcs: the web app's own lookups (Go's resolver) and its curl
// child's (glibc) carry their process, from the kernel's view of the
// resolver socket's connect().
func checkLookupProcs(t *testing.T, r *report.Report, shop int) {
	t.Helper()
	byName := map[string]string{}
	for _, l := range r.Lookups {
		if l.QType != "A" || l.Server.String() == "198.18.0.1:53" && l.Client.IsLoopback() {
			continue
		}
		if l.PID != nil && l.Comm != nil {
			byName[l.Name] = fmt.Sprintf("%s[%d]", *l.Comm, *l.PID)
		} else if _, ok := byName[l.Name]; !ok {
			byName[l.Name] = "-"
		}
	}
	if got, want := byName["updates.vendor.test"], fmt.Sprintf("shopapp[%d]", shop); got != want {
		t.Errorf("lookup of updates.vendor.test made by %s, want %s", got, want)
	}
	if got := byName["api.vendor.test"]; !strings.HasPrefix(got, "curl[") {
		t.Errorf("lookup of api.vendor.test made by %s, want the curl child", got)
	}
}

func within(t *testing.T, what string, got float64, want time.Duration) {
	t.Helper()
	w := float64(want.Milliseconds())
	if got < 0.9*w || got > 1.1*w {
		t.Errorf("%s: %.0f ms, want %.0f ms ± 10%%", what, got, w)
	}
}

func timeouts(t *testing.T, r *report.Report, shop int) {
	check, license := vendorCalls(t, r)
	for _, c := range []report.Connection{check, license} {
		if c.Outcome != report.Timeout || c.Attempts < 2 {
			t.Errorf("%s:%d: outcome %s after %d SYNs, want a timeout with retransmits", c.DstIP, c.DstPort, c.Outcome, c.Attempts)
		}
		within(t, fmt.Sprintf("%s:%d blocked", c.DstIP, c.DstPort), c.BlockedMS, connectTimeout)
	}
	within(t, "window blocked", r.Window.BlockedMS, 2*connectTimeout)
	// The login waits for each call in turn: it loses every wait, and the
	// scheduler view says so.
	if r.Window.LostBasis != report.LostScheduler {
		t.Errorf("lost_basis %q, want scheduler", r.Window.LostBasis)
	}
	within(t, "window lost", r.Window.LostMS, 2*connectTimeout)
	checkNames(t, check, license)
	checkProcs(t, check, license, shop)
	checkLookupProcs(t, r, shop)
	// The first line says it all: most of the login lost, both calls,
	// their attempts and blocked time, and the processes that made them.
	for _, want := range []string{"window lost", "2 unanswered calls", "updates.vendor.test:80 (", "SYNs",
		fmt.Sprintf("from shopapp[%d]", shop), "from curl["} {
		if !strings.Contains(r.Headline, want) {
			t.Errorf("headline %q does not contain %q", r.Headline, want)
		}
	}
}

var storyCases = []storyCase{
	{
		name: "drop_via_stub_resolver",
		dns:  testnet.DNSArgs(testnet.StoryRecords4),
		stub: true,
		appNft: `table inet egress_test { chain output {
			type filter hook output priority filter; policy accept;
			ip daddr 198.51.100.0/24 tcp dport { 80, 443 } drop
		}
		}`,
		check: func(t *testing.T, r *report.Report, shop int) {
			timeouts(t, r, shop)
			servers := map[string]bool{}
			for _, l := range r.Lookups {
				servers[l.Server.String()] = true
			}
			if !servers["127.0.0.53:53"] || !servers["198.18.0.1:53"] {
				t.Errorf("lookups went to %v, want the app's to the stub (127.0.0.53) and the stub's upstream (198.18.0.1)", servers)
			}
		},
	},
	{
		name: "drop",
		dns:  testnet.DNSArgs(testnet.StoryRecords4),
		appNft: `table inet egress_test { chain output {
			type filter hook output priority filter; policy accept;
			ip daddr 198.51.100.0/24 tcp dport { 80, 443 } drop
		}
		}`,
		check: timeouts,
	},
	{
		name: "reject",
		dns:  testnet.DNSArgs(testnet.StoryRecords4),
		vendorNft: `table inet egress_test { chain input {
			type filter hook input priority filter; policy accept;
			tcp dport { 80, 443 } reject with icmpx admin-prohibited
		}
		}`,
		check: func(t *testing.T, r *report.Report, shop int) {
			check, license := vendorCalls(t, r)
			for _, c := range []report.Connection{check, license} {
				// The kernel keeps the ICMP as a soft error and reports no
				// errno; the analyzer matches the captured ICMP error.
				if c.Outcome != report.Rejected || c.ICMP == nil || c.BlockedMS > 100 {
					t.Errorf("%s:%d: outcome %s (%s) icmp %v blocked %.0f ms, want rejected at once", c.DstIP, c.DstPort, c.Outcome, c.EndBasis, c.ICMP, c.BlockedMS)
				}
			}
			if r.Stats.Packets < 8+2 {
				t.Errorf("%d packets captured, want the 8 DNS packets and the 2 ICMP errors", r.Stats.Packets)
			}
			checkNames(t, check, license)
			checkProcs(t, check, license, shop)
		},
	},
	{
		name: "rst",
		dns:  testnet.DNSArgs(testnet.StoryRecords4),
		vendorNft: `table inet egress_test { chain input {
			type filter hook input priority filter; policy accept;
			tcp dport { 80, 443 } reject with tcp reset
		}
		}`,
		check: func(t *testing.T, r *report.Report, shop int) {
			check, license := vendorCalls(t, r)
			for _, c := range []report.Connection{check, license} {
				if c.Outcome != report.Refused || c.BlockedMS > 500 {
					t.Errorf("%s:%d: outcome %s blocked %.0f ms, want refused at once", c.DstIP, c.DstPort, c.Outcome, c.BlockedMS)
				}
			}
			checkNames(t, check, license)
			checkProcs(t, check, license, shop)
		},
	},
	{
		name: "allowed",
		dns:  testnet.DNSArgs(testnet.StoryRecords4),
		check: func(t *testing.T, r *report.Report, shop int) {
			check, license := vendorCalls(t, r)
			for _, c := range []report.Connection{check, license} {
				if c.Outcome != report.Established {
					t.Errorf("%s:%d: outcome %s, want established", c.DstIP, c.DstPort, c.Outcome)
				}
			}
			checkNames(t, check, license)
			checkProcs(t, check, license, shop)
		},
	},
	{
		name: "nxdomain",
		dns:  []string{"-rr", "other.vendor.test A 198.51.100.12"},
		check: func(t *testing.T, r *report.Report, shop int) {
			if len(r.Connections) != 0 {
				t.Errorf("connections without names: %s", connList(r))
			}
			nx := map[string]bool{}
			for _, l := range r.Lookups {
				if l.Outcome == report.NXDomain {
					nx[l.Name] = true
				}
			}
			if !nx["updates.vendor.test"] || !nx["api.vendor.test"] {
				t.Errorf("want NXDOMAIN lookups of both names: %s", connList(r))
			}
		},
	},
	{
		name: "dns_silent",
		dns:  []string{"-silent"},
		check: func(t *testing.T, r *report.Report, shop int) {
			if len(r.Connections) != 0 {
				t.Errorf("connections without names: %s", connList(r))
			}
			// The web app's resolver gives up after resolv.conf's 2 s,
			// seen as a timeout; curl gives up on its own connect timeout,
			// which no packet shows, so its lookups may stay pending until
			// the window ends.
			unanswered := map[string]report.Outcome{}
			for _, l := range r.Lookups {
				if l.Outcome == report.Timeout || l.Outcome == report.Pending {
					unanswered[l.Name] = l.Outcome
				}
			}
			if unanswered["updates.vendor.test"] != report.Timeout || unanswered["api.vendor.test"] == 0 {
				t.Errorf("want the web app's lookups to time out and curl's to go unanswered: %s", connList(r))
			}
			if r.Window.BlockedMS < 2*float64(connectTimeout.Milliseconds())*0.9 {
				t.Errorf("window blocked %.0f ms, want at least the two lookups' timeouts", r.Window.BlockedMS)
			}
		},
	},
	{
		name: "ipv6_drop",
		dns:  testnet.DNSArgs(testnet.StoryRecords6),
		appNft: `table inet egress_test { chain output {
			type filter hook output priority filter; policy accept;
			ip6 daddr 2001:db8:2::/64 tcp dport { 80, 443 } drop
		}
		}`,
		check: func(t *testing.T, r *report.Report, shop int) {
			timeouts(t, r, shop)
			for _, c := range r.Connections {
				if !c.DstIP.Is6() {
					t.Errorf("%s: want IPv6", c.DstIP)
				}
			}
		},
	},
}

// TestPrivilegedWatchStory runs the phone-home story in namespaces (app -
// router - vendor, DNS on the router), watches the web app with egress
// watch while the router logs in, and checks the report of each variant;
// every run is also written to pcapng and replayed, and must give the same
// report.
func TestPrivilegedWatchStory(t *testing.T) {
	testnet.RequirePrivileged(t, "nft", "curl")
	bin := testnet.BuildActors(t)
	for _, c := range storyCases {
		t.Run(c.name, func(t *testing.T) { runStoryCase(t, bin, c) })
	}
}

func runStoryCase(t *testing.T, bin string, c storyCase) {
	n := testnet.NewForTest(t, "nft", "curl")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := testnet.Story(ctx, n)
	must(err)
	app, router, vendor := hosts.App, hosts.Router, hosts.Vendor
	if c.appNft != "" {
		must(app.Nft(ctx, c.appNft))
	}
	if c.vendorNft != "" {
		must(vendor.Nft(ctx, c.vendorNft))
	}
	// One try, two seconds: a silent server costs the connect timeout.
	resolver := netip.MustParseAddr("198.18.0.1")
	if c.stub {
		resolver = netip.MustParseAddr("127.0.0.53")
	}
	must(app.ResolvConf(resolver, "timeout:2 attempts:1"))

	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	_, err = router.StartListening(ctx, "udp", 53, filepath.Join(bin, "dnsd"), &logs, append([]string{"-listen", "198.18.0.1:53"}, c.dns...)...)
	must(err)
	_, err = vendor.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs)
	must(err)
	if c.stub {
		_, err = app.Start("dnsmasq", &logs, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
			"--listen-address=127.0.0.53", "--server=198.18.0.1", "--user=root", "--pid-file=", "--log-facility=-")
		must(err)
	}
	shop, err := app.Start(filepath.Join(bin, "shopapp"), &logs, "-listen", "198.18.0.2:8080",
		"-connect-timeout", connectTimeout.String(), "-child", "license")
	must(err)
	// The shop starts asynchronously: wait until it answers (not a login:
	// that would call the vendor before egress watches).
	for i := 0; ; i++ {
		if _, err := router.Run(ctx, "curl", "-s", "--max-time", "2", "http://198.18.0.2:8080/"); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("the shop never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	pcap := filepath.Join(t.TempDir(), "watch.pcapng")
	trigger := fmt.Sprintf("ip netns exec %s curl -s -S --max-time 30 -d user=admin http://198.18.0.2:8080/login", router.Name)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"watch", "--pid", strconv.Itoa(shop.Cmd.Process.Pid), "--trigger", trigger,
		"--format", "json", "--write", pcap}, nil, &stdout, &stderr)
	t.Logf("watch took %v, exit %d; stderr:\n%s", time.Since(start).Round(time.Millisecond), code, stderr.String())
	if code != ExitOK {
		t.Fatalf("egress watch exit %d", code)
	}
	if !strings.Contains(stderr.String(), "ebpf tracepoints") || !strings.Contains(stderr.String(), "af_packet") {
		t.Errorf("start-up does not name the backends:\n%s", stderr.String())
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("watch JSON: %v\n%s", err, stdout.String())
	}
	if r.Source != fmt.Sprintf("watch pid %d", shop.Cmd.Process.Pid) || r.Stats.EventsLost != 0 {
		t.Errorf("source %q, events lost %d", r.Source, r.Stats.EventsLost)
	}
	c.check(t, &r, shop.Cmd.Process.Pid)
	if t.Failed() {
		t.Logf("report: %s", connList(&r))
		keepForDebug(t, pcap)
	}

	// The round trip: the file, replayed over the same window, gives the
	// same report.
	rd, err := pcapfile.Open(pcap)
	must(err)
	wi, ok := rd.Watch()
	rd.Close()
	if !ok {
		t.Fatal("the pcapng file does not record the watch window")
	}
	edge := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	var rout, rerr bytes.Buffer
	if code := Main(ctx, []string{"replay", pcap, "--format", "json", "--from", edge(wi.From), "--to", edge(wi.To)}, nil, &rout, &rerr); code != ExitOK {
		t.Fatalf("replay of the written file: exit %d: %s", code, rerr.String())
	}
	var live, replayed map[string]any
	must(json.Unmarshal(stdout.Bytes(), &live))
	must(json.Unmarshal(rout.Bytes(), &replayed))
	for _, m := range []map[string]any{live, replayed} {
		delete(m, "source")
		delete(m, "backend")
	}
	if diff := cmp.Diff(live, replayed); diff != "" {
		t.Errorf("replay of the written file differs from the live report (-live +replay):\n%s", diff)
	}
}
