package testnet

import (
	"context"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPrivilegedStory builds the recording's topology (app - router -
// vendor, DNS on the router) and checks a reduced story: the router's
// firewall silently drops HTTPS to the vendor, so the login's HTTP call
// succeeds and its HTTPS call blocks for the whole connect timeout.
func TestPrivilegedStory(t *testing.T) {
	n := NewForTest(t, "nft", "curl")
	bin := BuildActors(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := Story(ctx, n)
	must(err)
	app, router, vendor := hosts.App, hosts.Router, hosts.Vendor
	must(router.Nft(ctx, `
table inet egress_test {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 198.51.100.0/24 tcp dport 443 drop
	}
}`))
	must(app.ResolvConf(netip.MustParseAddr("198.18.0.1"), "timeout:2 attempts:1"))

	var logs SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	_, err = router.StartListening(ctx, "udp", 53, filepath.Join(bin, "dnsd"), &logs,
		append([]string{"-listen", "198.18.0.1:53"}, DNSArgs(StoryRecords4)...)...)
	must(err)
	_, err = vendor.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs)
	must(err)
	_, err = app.Start(filepath.Join(bin, "shopapp"), &logs, "-listen", "198.18.0.2:8080", "-connect-timeout", "1s")
	must(err)

	// The servers start asynchronously: retry the login briefly.
	var out []byte
	start := time.Now()
	for i := 0; i < 50; i++ {
		start = time.Now()
		out, err = router.Run(ctx, "curl", "-s", "-S", "--max-time", "10", "-d", "user=admin", "http://198.18.0.2:8080/login")
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	if err != nil {
		t.Fatalf("admin login: %v", err)
	}
	want := regexp.MustCompile(`^check via go: 200 "latest=4.2.1" \(\S+\)
license via go: error: Get "https://api.vendor.test/v1/license": connecting to api.vendor.test \(198.51.100.11:443\): dial tcp 198.51.100.11:443: i/o timeout \(1(\.\d+)?s\)
login ok after \S+
$`)
	if !want.Match(out) {
		t.Errorf("login reply:\n%s\ndoes not match:\n%s", out, want)
	}
	if took < time.Second || took > 3*time.Second {
		t.Errorf("login took %v, want the 1 s connect timeout plus a little", took)
	}
	if !strings.Contains(logs.String(), "update check") {
		t.Errorf("vendor never saw the update check; logs:\n%s", logs.String())
	}
}
