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

// Usage mistakes are found before anything is started. egress run's own
// failures exit 125, a command that cannot be found 127 and one that
// cannot be executed 126, so none is taken for the command's status.
func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("allow:\n  - host: a.example\n  - cidr: 198.51.100.0/24\n    port: 99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--block", "--", "true"}, ExitRunFailed, "--block needs --rules"},
		{[]string{"run", "--mode", "strict", "--", "true"}, ExitRunFailed, "unknown --mode"},
		{[]string{"run", "true"}, ExitRunFailed, "put -- before the command"},
		{[]string{"run"}, ExitRunFailed, "no command"},
		{[]string{"run", "--no-such-flag", "--", "true"}, ExitRunFailed, "unknown flag"},
		{[]string{"run", "--rules", bad, "--", "true"}, ExitRunFailed, bad + ":4: "},
		{[]string{"run", "--format", "xml", "--", "true"}, ExitRunFailed, "unknown --format"},
		{[]string{"run", "--", "/nonexistent/cmd"}, ExitNotFound, "/nonexistent/cmd"},
		{[]string{"run", "--", "no-such-command-egress-test"}, ExitNotFound, "no-such-command-egress-test"},
		{[]string{"run", "--", notExec}, ExitNotExecutable, "permission denied"},
	} {
		code, _, stderr := runMain(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
