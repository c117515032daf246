package testnet

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sync"
	"testing"
)

// BuildActors builds the story's actors (dnsd, vendord, shopapp) into a
// temporary directory of t and returns it. Tests that run them inside
// namespaces need real binaries: `go run` would build inside the namespace.
func BuildActors(t testing.TB) string {
	t.Helper()
	return Build(t, "github.com/egress-dev/egress/internal/testkit/testnet/dnsd",
		"github.com/egress-dev/egress/internal/testkit/testnet/vendord",
		"github.com/egress-dev/egress/internal/testkit/testnet/shopapp")
}

// Build builds the main packages pkgs (import paths) without cgo into a
// temporary directory of t and returns it.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go command to build the test programs: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %v: %v\n%s", pkgs, err, out)
	}
	return dir
}

// SyncBuffer is a bytes.Buffer safe for the concurrent writes of several
// processes' output copiers (server logs in tests).
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StoryHosts are the namespaces of the phone-home story: the app (the web
// shop; 198.18.0.2, 2001:db8:1::2), a router (198.18.0.1 and 198.51.100.1,
// 2001:db8:1::1 and 2001:db8:2::1, forwarding; the DNS server runs here) and
// the vendor (198.51.100.10 and .11, 2001:db8:2::10 and ::11).
type StoryHosts struct {
	App, Router, Vendor *Namespace
}

// Story builds the story's three namespaces in n, linked app - router -
// vendor with addresses and default routes. Firewalls, resolv.conf and the
// actors are the caller's.
func Story(ctx context.Context, n *Net) (*StoryHosts, error) {
	app, err := n.Namespace(ctx, "app")
	if err != nil {
		return nil, err
	}
	router, err := n.Namespace(ctx, "router")
	if err != nil {
		return nil, err
	}
	vendor, err := n.Namespace(ctx, "vendor")
	if err != nil {
		return nil, err
	}
	pfx := netip.MustParsePrefix
	steps := []func() error{
		func() error { return n.Link(ctx, app, "eth0", router, "app0") },
		func() error { return n.Link(ctx, vendor, "eth0", router, "vnd0") },
		func() error { return app.Addr(ctx, "eth0", pfx("198.18.0.2/24")) },
		func() error { return app.Addr(ctx, "eth0", pfx("2001:db8:1::2/64")) },
		func() error { return router.Addr(ctx, "app0", pfx("198.18.0.1/24")) },
		func() error { return router.Addr(ctx, "app0", pfx("2001:db8:1::1/64")) },
		func() error { return router.Addr(ctx, "vnd0", pfx("198.51.100.1/24")) },
		func() error { return router.Addr(ctx, "vnd0", pfx("2001:db8:2::1/64")) },
	}
	for _, a := range []string{"198.51.100.10/24", "198.51.100.11/24", "2001:db8:2::10/64", "2001:db8:2::11/64"} {
		steps = append(steps, func() error { return vendor.Addr(ctx, "eth0", pfx(a)) })
	}
	// Routes last: a gateway must be on a link that has an address.
	steps = append(steps,
		func() error { return router.Forwarding(ctx) },
		func() error { return app.Route(ctx, netip.Prefix{}, netip.MustParseAddr("198.18.0.1")) },
		func() error { return app.Route(ctx, netip.Prefix{}, netip.MustParseAddr("2001:db8:1::1")) },
		func() error { return vendor.Route(ctx, netip.Prefix{}, netip.MustParseAddr("198.51.100.1")) },
		func() error { return vendor.Route(ctx, netip.Prefix{}, netip.MustParseAddr("2001:db8:2::1")) },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("building the story's hosts: %w", err)
		}
	}
	return &StoryHosts{App: app, Router: router, Vendor: vendor}, nil
}

// The story's DNS records, as dnsd serves them on the router: the update
// host directly, the license host through a CNAME, over IPv4 or IPv6.
var (
	StoryRecords4 = []string{"updates.vendor.test A 198.51.100.10", "api.vendor.test CNAME edge.vendor.test", "edge.vendor.test A 198.51.100.11"}
	StoryRecords6 = []string{"updates.vendor.test AAAA 2001:db8:2::10", "api.vendor.test CNAME edge.vendor.test", "edge.vendor.test AAAA 2001:db8:2::11"}
)

// DNSArgs turns records into dnsd's -rr flags.
func DNSArgs(records []string) []string {
	var a []string
	for _, rr := range records {
		a = append(a, "-rr", rr)
	}
	return a
}
