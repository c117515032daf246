//go:build linux

package cli

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egress-dev/egress/containers"
	"github.com/egress-dev/egress/metrics"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// TestAgentStream: the agent's stream drops loopback calls, applies the
// filters, gives each line its process's container and judges it with the
// rules in use.
func TestAgentStream(t *testing.T) {
	proc := t.TempDir()
	id := strings.Repeat("ab", 32)
	for pid, cg := range map[string]string{"10": "0::/machine.slice/libpod-" + id + ".scope/container\n", "11": "0::/user.slice/session-1.scope\n"} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(cg), 0o644)
	}
	pol, err := rules.Parse("allow.yaml", []byte("allow:\n  - host: ok.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	conn := func(pid int, comm, host string, loopback bool) *report.Connection {
		return &report.Connection{PID: &pid, Comm: &comm, Host: host, DstIP: netip.MustParseAddr("198.18.0.10"), DstPort: 443,
			Outcome: report.Timeout, Loopback: loopback, Count: 1, BlockedMS: 2000}
	}
	for _, tc := range []struct {
		name   string
		flags  agentFlags
		calls  []*report.Connection
		want   []string // host and container id of each line
		ignore int      // filtered + loopback
	}{
		{"everything but loopback", agentFlags{}, []*report.Connection{conn(10, "app", "a.example", false), conn(11, "sh", "b.example", false), conn(11, "sh", "localhost", true)},
			[]string{"a.example " + id, "b.example "}, 1},
		{"by container ID prefix", agentFlags{containers: []string{id[:12]}}, []*report.Connection{conn(10, "app", "a.example", false), conn(11, "sh", "b.example", false)},
			[]string{"a.example " + id}, 1},
		{"by comm", agentFlags{comms: []string{"sh"}}, []*report.Connection{conn(10, "app", "a.example", false), conn(11, "sh", "b.example", false)},
			[]string{"b.example "}, 1},
		{"by cgroup", agentFlags{cgroups: []string{"/user.slice"}}, []*report.Connection{conn(10, "app", "a.example", false), conn(11, "sh", "ok.example", false)},
			[]string{"ok.example "}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			a := &agent{fl: &tc.flags, res: containers.NewResolver(proc, ""), m: metrics.New(metrics.Limits{}), out: &lockedWriter{w: &out}}
			a.rules.Store(&ruleSet{pol: pol, crit: &report.Criteria{Rules: "allow.yaml"}})
			for _, c := range tc.calls {
				if err := a.Connection(c); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if line == "" {
					continue
				}
				var m struct {
					Host    string
					Verdict *struct {
						Expected bool
						Fails    string
					}
					Container *struct{ ID string }
				}
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatal(err)
				}
				cid := ""
				if m.Container != nil {
					cid = m.Container.ID
				}
				got = append(got, m.Host+" "+cid)
				// Judged as watch judges (report.Judge, audit): expected or
				// not, and nothing fails the check.
				if m.Verdict == nil || m.Verdict.Expected != (m.Host == "ok.example") || m.Verdict.Fails != "" {
					t.Errorf("%s: verdict %+v", m.Host, m.Verdict)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
			if n := int(a.leftOut.Load() + a.loopback.Load()); n != tc.ignore {
				t.Errorf("%d calls left out, want %d", n, tc.ignore)
			}
		})
	}
}

// TestAgentUsage checks what the agent refuses before touching the kernel.
func TestAgentUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--max-size", "0"}, "--max-size must be positive"},
		{[]string{"agent", "--max-files", "0"}, "--max-files at least 1"},
		{[]string{"agent", "--rules", "/nonexistent/allow.yaml"}, "allow.yaml"},
		{[]string{"agent", "extra"}, "unknown command"},
	} {
		code, out, stderr := runMain(t, nil, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, stderr, out, ExitUsage, tc.want)
		}
	}
}
