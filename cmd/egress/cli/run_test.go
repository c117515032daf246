//go:build linux

package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolvers(t *testing.T) {
	got, err := resolvers([]string{"198.18.0.1", "[2001:db8::53]:5353", "192.0.2.1:53"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:53"), netip.MustParseAddrPort("[2001:db8::53]:5353"), netip.MustParseAddrPort("192.0.2.1:53")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("resolvers (-want +got):\n%s", diff)
	}
	if _, err := resolvers([]string{"dns.example"}); err == nil {
		t.Errorf("a name as resolver: no error")
	}
}

// Usage mistakes are found before anything is started, with exit code 2.
func TestRunUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("allow:\n  - host: a.example\n  - cidr: 198.51.100.0/24\n    port: 99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--block", "--", "true"}, "--block needs --rules"},
		{[]string{"run", "--mode", "strict", "--", "true"}, "unknown --mode"},
		{[]string{"run", "true"}, "put -- before the command"},
		{[]string{"run", "--rules", bad, "--", "true"}, bad + ":4: "},
		{[]string{"run", "--", "/nonexistent/cmd"}, "/nonexistent/cmd"},
		{[]string{"run", "--format", "xml", "--", "true"}, "unknown --format"},
	} {
		code, _, stderr := runMain(t, nil, tt.args...)
		if code != ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, ExitUsage, tt.want)
		}
	}
}
