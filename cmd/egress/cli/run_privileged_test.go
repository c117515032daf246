//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// runNet is the test network of egress run: an app namespace whose
// resolver (dnsd) and vendor (vendord) live in a server namespace. The
// server also answers on 198.51.100.10, a tracker the policy does not
// allow, and the app's own firewall silently drops HTTP to it, so a call
// there hangs until curl's 5 s connect timeout.
type runNet struct {
	app    *testnet.Namespace
	bin    string // egress, dnsd, vendord
	policy string
	script string // a command making an allowed and an unexpected call
}

func newRunNet(t *testing.T) *runNet {
	t.Helper()
	n := testnet.NewForTest(t, "nft", "curl", "sh", "date")
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress",
		"github.com/egress-dev/egress/internal/testkit/testnet/dnsd", "github.com/egress-dev/egress/internal/testkit/testnet/vendord")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pfx := netip.MustParsePrefix
	app, srv, err := n.Pair(ctx, "app", pfx("198.18.0.2/24"), "srv", pfx("198.18.0.1/24"))
	must(err)
	must(srv.Addr(ctx, "eth0", pfx("198.51.100.10/32")))
	must(app.Route(ctx, pfx("198.51.100.0/24"), netip.MustParseAddr("198.18.0.1")))
	must(app.Nft(ctx, `
table inet egress_run_test {
	chain out {
		type filter hook output priority filter; policy accept;
		ip daddr 198.51.100.10 tcp dport 80 drop
	}
}`))
	must(app.ResolvConf(netip.MustParseAddr("198.18.0.1"), "timeout:2 attempts:1"))
	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	_, err = srv.StartListening(ctx, "udp", 53, filepath.Join(bin, "dnsd"), &logs, "-listen", "198.18.0.1:53",
		"-rr", "updates.shopvendor.example A 198.18.0.1",
		"-rr", "telemetry.tracker.example A 198.51.100.10")
	must(err)
	_, err = srv.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs, "-http", ":80", "-https", "")
	must(err)
	// The servers start asynchronously.
	for i := 0; ; i++ {
		if _, err := app.Run(ctx, "curl", "-s", "-m", "1", "http://198.18.0.1/check"); err == nil {
			break
		} else if i == 50 {
			t.Fatalf("vendor does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	script := filepath.Join(bin, "calls.sh")
	must(os.WriteFile(script, []byte(`# calls.sh TIMES URL...: fetch each URL, log how long each took to TIMES.
times=$1; shift
for u in "$@"; do
	s=$(date +%s%N); curl -s -o /dev/null --connect-timeout 5 "$u"; rc=$?; e=$(date +%s%N)
	echo "$u $(( (e-s)/1000000 )) $rc" >> "$times"
done
exit 0
`), 0o644))
	return &runNet{app: app, bin: bin, policy: filepath.Join(rulesDir, "ci-shop.yaml"), script: script}
}

const (
	allowedURL = "http://updates.shopvendor.example/check"
	trackerURL = "http://telemetry.tracker.example/check"
	trackerIP  = "http://198.51.100.10/check"
)

type runResult struct {
	pid            int // egress's (ip netns exec execs it in place)
	code           int
	stdout, stderr string
	times          map[string]time.Duration // URL -> how long its curl took
	codes          map[string]int           // URL -> curl's exit status
}

// egressRun runs egress run inside the app namespace with env added.
func (n *runNet) egressRun(t *testing.T, env []string, flags []string, urls ...string) runResult {
	t.Helper()
	times := filepath.Join(t.TempDir(), "times")
	args := append([]string{"netns", "exec", n.app.Name, filepath.Join(n.bin, "egress"), "run"}, flags...)
	args = append(args, "--", "sh", n.script, times)
	args = append(args, urls...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := runResult{stdout: out.String(), stderr: errb.String(), times: map[string]time.Duration{}, codes: map[string]int{}}
	if cmd.Process != nil {
		res.pid = cmd.Process.Pid
	}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("egress run: %v", err)
	}
	data, _ := os.ReadFile(times)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		ms, _ := strconv.Atoi(f[1])
		rc, _ := strconv.Atoi(f[2])
		res.times[f[0]] = time.Duration(ms) * time.Millisecond
		res.codes[f[0]] = rc
	}
	if len(res.times) != len(urls) && res.code != ExitUsage {
		t.Fatalf("the command logged %d of %d calls; stderr:\n%s", len(res.times), len(urls), res.stderr)
	}
	return res
}

type junitDoc struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Suites   []struct {
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, s string) (doc junitDoc, failed []string) {
	t.Helper()
	if err := xml.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("junit does not parse: %v\n%s", err, s)
	}
	for _, su := range doc.Suites {
		for _, c := range su.Cases {
			if c.Failure != nil {
				failed = append(failed, c.Name)
			}
		}
	}
	// JUnit lists the worst first (by wait): the tests check which fail.
	slices.Sort(failed)
	return doc, failed
}

// TestPrivilegedRun: the "done when". An allowed run passes; a run
// that phones home fails with a JUnit report naming the unexpected host, in
// every format; --block turns the call that hangs 5 s into a failure in
// well under a second, measured against the hanging case in this test.
func TestPrivilegedRun(t *testing.T) {
	n := newRunNet(t)

	t.Run("allowed run passes", func(t *testing.T) {
		for _, block := range []bool{false, true} {
			flags := []string{"--rules", n.policy, "--format", "junit"}
			if block {
				flags = append(flags, "--block")
			}
			res := n.egressRun(t, nil, flags, allowedURL)
			doc, failed := parseJUnit(t, res.stdout)
			if res.code != ExitOK || res.codes[allowedURL] != 0 || doc.Tests != 1 || len(failed) != 0 {
				t.Errorf("--block=%v: exit %d, curl %d, %d tests, failed %q; want 0, 0, 1, none\nstderr:\n%s\n%s",
					block, res.code, res.codes[allowedURL], doc.Tests, failed, res.stderr, res.stdout)
			}
			if want := "updates.shopvendor.example:80/tcp"; doc.Tests == 1 && doc.Suites[0].Cases[0].Name != want {
				t.Errorf("--block=%v: test case %q, want %q (named through the DNS proxy)", block, doc.Suites[0].Cases[0].Name, want)
			}
		}
	})

	var hang time.Duration
	t.Run("phone home hangs without --block", func(t *testing.T) {
		res := n.egressRun(t, nil, []string{"--rules", n.policy, "--format", "junit"}, allowedURL, trackerURL)
		_, failed := parseJUnit(t, res.stdout)
		// The lookup is a call of its own (issue 9): no host rule allows it.
		if res.code != ExitUnexpected || !cmpStrings(failed, []string{"telemetry.tracker.example/dns", "telemetry.tracker.example:80/tcp"}) {
			t.Errorf("exit %d, failed cases %q; want %d and the tracker\n%s\n%s", res.code, failed, ExitUnexpected, res.stdout, res.stderr)
		}
		hang = res.times[trackerURL]
		if res.codes[trackerURL] != 28 || hang < 4500*time.Millisecond {
			t.Errorf("the tracker call: curl exit %d after %v; want a connect timeout (28) after 5 s", res.codes[trackerURL], hang)
		}
		if !strings.Contains(res.stdout, "timeout") {
			t.Errorf("the report does not say the call timed out:\n%s", res.stdout)
		}
	})

	for _, format := range []string{"junit", "markdown", "json", "table"} {
		t.Run("--block fails fast/"+format, func(t *testing.T) {
			res := n.egressRun(t, nil, []string{"--rules", n.policy, "--block", "--format", format}, allowedURL, trackerURL, trackerIP)
			if res.code != ExitUnexpected {
				t.Errorf("exit %d, want %d\n%s", res.code, ExitUnexpected, res.stderr)
			}
			if res.codes[allowedURL] != 0 {
				t.Errorf("the allowed call failed under --block: curl exit %d", res.codes[allowedURL])
			}
			// The name is refused by the proxy (curl: could not resolve, 6),
			// the address at connect() (curl: could not connect, 7).
			if res.codes[trackerURL] != 6 || res.codes[trackerIP] != 7 {
				t.Errorf("curl exits: name %d, address %d; want 6 and 7", res.codes[trackerURL], res.codes[trackerIP])
			}
			for _, u := range []string{trackerURL, trackerIP} {
				took := res.times[u]
				if took > 500*time.Millisecond || (hang > 0 && took*10 > hang) {
					t.Errorf("%s took %v under --block, against %v hanging: want well under a second", u, took, hang)
				}
				t.Logf("%s: %v blocked, %v hanging", u, took, hang)
			}
			for _, want := range []string{"telemetry.tracker.example", "198.51.100.10"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("the %s report does not name %s:\n%s", format, want, res.stdout)
				}
			}
			switch format {
			case "junit":
				_, failed := parseJUnit(t, res.stdout)
				slices.Sort(failed) // worst first: the order depends on the waits
				if want := []string{"198.51.100.10:80/tcp", "telemetry.tracker.example/dns"}; !cmpStrings(failed, want) {
					t.Errorf("failed cases %q, want %q", failed, want)
				}
			case "json":
				var r report.Report
				if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
					t.Fatal(err)
				}
				blocked := 0
				for _, c := range r.Connections {
					if c.EndBasis == report.BasisBlockedConnect && c.Outcome == report.Rejected && c.DstIP.String() == "198.51.100.10" {
						blocked++
					}
				}
				if blocked == 0 {
					t.Errorf("no connection to 198.51.100.10 is rejected with %q:\n%s", report.BasisBlockedConnect, res.stdout)
				}
				// The proxy sees 127.0.0.1:port; the kernel saw which
				// process connected that resolver socket.
				byCurl := 0
				for _, l := range r.Lookups {
					if l.Comm != nil && *l.Comm == "curl" && l.PID != nil {
						byCurl++
					}
				}
				if byCurl == 0 {
					t.Errorf("no lookup is attributed to curl:\n%s", res.stdout)
				}
			}
		})
	}

	t.Run("audit mode reports without failing", func(t *testing.T) {
		res := n.egressRun(t, nil, []string{"--rules", n.policy, "--block", "--mode", "audit", "--format", "json"}, trackerIP)
		if res.code != ExitOK || !strings.Contains(res.stdout, "198.51.100.10") || !strings.Contains(res.stderr, "audit: 1 unexpected destination") {
			t.Errorf("exit %d, want 0 with the call reported\nstderr:\n%s", res.code, res.stderr)
		}
		if strings.Contains(res.stdout, `"fails"`) || !strings.Contains(res.stdout, `"mode": "audit"`) {
			t.Errorf("audit mode: a call fails the check in the JSON, or the check is not audit:\n%s", res.stdout)
		}
		// On GitHub, audit mode warns; --fail-on unexpected still fails (4).
		res = n.egressRun(t, []string{"GITHUB_ACTIONS=true"}, []string{"--rules", n.policy, "--block", "--mode", "audit", "--format", "junit"}, trackerIP)
		if res.code != ExitOK || strings.Contains(res.stderr, "::error") || !strings.Contains(res.stderr, "::warning title=egress%3A unexpected call to 198.51.100.10%3A80") {
			t.Errorf("audit on GitHub: exit %d, want 0 and a warning, no error:\n%s", res.code, res.stderr)
		}
		res = n.egressRun(t, nil, []string{"--rules", n.policy, "--block", "--mode", "audit", "--fail-on", "unexpected", "--format", "junit"}, trackerIP)
		if _, failed := parseJUnit(t, res.stdout); res.code != ExitRunFindings || !cmpStrings(failed, []string{"198.51.100.10:80/tcp"}) {
			t.Errorf("audit with --fail-on unexpected: exit %d, failed %q; want %d and the call", res.code, failed, ExitRunFindings)
		}
	})

	t.Run("GitHub Actions", func(t *testing.T) {
		summary := filepath.Join(t.TempDir(), "summary.md")
		res := n.egressRun(t, []string{"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=" + summary},
			[]string{"--rules", n.policy, "--block", "--format", "junit", "--report", filepath.Join(t.TempDir(), "r.xml")}, allowedURL, trackerIP)
		if res.code != ExitUnexpected {
			t.Errorf("exit %d, want %d", res.code, ExitUnexpected)
		}
		if !regexp.MustCompile(`(?m)^::error title=egress%3A unexpected call to 198\.51\.100\.10%3A80::`).MatchString(res.stderr) {
			t.Errorf("no ::error annotation for the blocked call:\n%s", res.stderr)
		}
		md, err := os.ReadFile(summary)
		if err != nil || !strings.Contains(string(md), "| ❌ | `198.51.100.10:80/tcp`") {
			t.Errorf("step summary (%v):\n%s", err, md)
		}
	})

	t.Run("the command's failure wins", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := n.app.Command(ctx, filepath.Join(n.bin, "egress"), "run", "--rules", n.policy, "--block", "--",
			"sh", "-c", fmt.Sprintf("curl -s -o /dev/null %s; exit 7", trackerIP))
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Errorf("egress run of a command exiting 7: %v, want exit status 7", err)
		}
	})

	// A baseline report of an earlier run: what it had is expected, and
	// --block lets it through, so the job fails only on what is new.
	t.Run("--baseline", func(t *testing.T) {
		old := filepath.Join(t.TempDir(), "old.json")
		res := n.egressRun(t, nil, []string{"--format", "json", "--report", old}, allowedURL)
		if res.code != ExitOK {
			t.Fatalf("baseline run: exit %d\n%s", res.code, res.stderr)
		}
		res = n.egressRun(t, nil, []string{"--baseline", old, "--block", "--format", "junit"}, allowedURL)
		if _, failed := parseJUnit(t, res.stdout); res.code != ExitOK || res.codes[allowedURL] != 0 || len(failed) != 0 {
			t.Errorf("the baseline's call again: exit %d, curl %d, failed %q; want 0, 0, none\n%s\n%s", res.code, res.codes[allowedURL], failed, res.stdout, res.stderr)
		}
		res = n.egressRun(t, nil, []string{"--baseline", old, "--block", "--format", "junit"}, allowedURL, trackerURL)
		_, failed := parseJUnit(t, res.stdout)
		if res.code != ExitUnexpected || res.codes[allowedURL] != 0 || !cmpStrings(failed, []string{"telemetry.tracker.example/dns"}) {
			t.Errorf("a new call: exit %d, curl %d, failed %q; want %d, 0 and only the new name\n%s\n%s", res.code, res.codes[allowedURL], failed, ExitUnexpected, res.stdout, res.stderr)
		}
		if !strings.Contains(res.stdout, "baseline "+old) {
			t.Errorf("the report does not name the baseline as the reason:\n%s", res.stdout)
		}
		cur := filepath.Join(t.TempDir(), "new.json")
		n.egressRun(t, nil, []string{"--baseline", old, "--format", "json", "--report", cur}, allowedURL, trackerIP)
		code, out, _ := runMain(t, nil, "diff", old, cur)
		if code != ExitFindings || !regexp.MustCompile(`(?m)^new +198\.51\.100\.10:80/tcp +curl`).MatchString(out) {
			t.Errorf("egress diff of the two runs: exit %d\n%s", code, out)
		}
	})

	// The command's own status passes through unchanged; egress's own
	// codes (3, 4, 125-127) are apart from the common ones.
	t.Run("exit codes", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want int
			out  string // in stdout
		}{
			{[]string{"--", "false"}, 1, ""},
			{[]string{"--", "sh", "-c", "exit 2"}, 2, ""},
			{[]string{"--rules", n.policy, "--format", "junit", "--", "true"}, ExitOK, `tests="1" failures="0"`},
			{[]string{"--rules", n.policy, "--format", "markdown", "--", "true"}, ExitOK, "### egress: no unexpected outbound calls"},
			// A closed port answers with RST: refused, allowed by the policy.
			{[]string{"--rules", n.policy, "--fail-on", "refused", "--format", "junit", "--", "sh", "-c", "curl -s http://updates.shopvendor.example:443/; true"}, ExitRunFindings, `type="fail-on"`},
			{[]string{"--", "/nonexistent/cmd"}, ExitNotFound, ""},
			{[]string{"--no-such-flag", "--", "true"}, ExitRunFailed, ""},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			cmd := n.app.Command(ctx, filepath.Join(n.bin, "egress"), append([]string{"run"}, tt.args...)...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			cancel()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want || !strings.Contains(out.String(), tt.out) {
				t.Errorf("egress run %q: exit %d, want %d with %q in\n%s\nstderr:\n%s", tt.args, code, tt.want, tt.out, out.String(), errb.String())
			}
			if strings.Contains(out.String(), "no policy applied") {
				t.Errorf("egress run %q: the report says no policy applied:\n%s", tt.args, out.String())
			}
		}
	})
}

// TestPrivilegedRunCleansUp: egress run removes the cgroup it made (named
// egress-run-PID-N after the egress process; other runs on the machine may
// have cgroups of their own meanwhile).
func TestPrivilegedRunCleansUp(t *testing.T) {
	n := newRunNet(t)
	res := n.egressRun(t, nil, []string{"--rules", n.policy, "--block"}, trackerIP)
	if res.code != ExitUnexpected {
		t.Errorf("exit %d, want %d", res.code, ExitUnexpected)
	}
	if res.pid == 0 {
		t.Fatal("no pid for the egress run")
	}
	for _, mount := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		left, _ := filepath.Glob(filepath.Join(mount, fmt.Sprintf("egress-run-%d-*", res.pid)))
		if len(left) > 0 {
			t.Errorf("the run's cgroup was left behind: %q", left)
		}
	}
}

func cmpStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestPrivilegedRunStory is the story: the shop's admin login waits for a
// license check that the router's firewall silently drops. Under egress run
// the login takes the shop's whole connect timeout and the report blames
// api.vendor.test; with --block and a policy that does not allow it, the
// same login finishes at once, measured in the same test.
func TestPrivilegedRunStory(t *testing.T) {
	n := testnet.NewForTest(t, "nft", "curl", "sh", "sleep")
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress",
		"github.com/egress-dev/egress/internal/testkit/testnet/dnsd", "github.com/egress-dev/egress/internal/testkit/testnet/vendord",
		"github.com/egress-dev/egress/internal/testkit/testnet/shopapp")
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
	must(router.Nft(ctx, `
table inet egress_test {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 198.51.100.0/24 tcp dport 443 drop
	}
}`))
	must(app.ResolvConf(netip.MustParseAddr("198.18.0.1"), "timeout:2 attempts:1"))
	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	_, err = router.StartListening(ctx, "udp", 53, filepath.Join(bin, "dnsd"), &logs,
		append([]string{"-listen", "198.18.0.1:53"}, testnet.DNSArgs(testnet.StoryRecords4)...)...)
	must(err)
	_, err = vendor.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs)
	must(err)

	// The login, as a command: start the shop, log in once, stop it.
	login := fmt.Sprintf(`%s -listen 127.0.0.1:8080 -connect-timeout 5s & shop=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
s=$(date +%%s%%N); curl -s -d user=admin http://127.0.0.1:8080/login; e=$(date +%%s%%N)
echo "login took $(( (e-s)/1000000 )) ms"
kill $shop`, filepath.Join(bin, "shopapp"))
	policy := filepath.Join(rulesDir, "story-update-only.yaml")
	catalog := filepath.Join(rulesDir, "vendor-catalog.yaml")
	took := regexp.MustCompile(`login took (\d+) ms`)
	run := func(block bool) (code int, loginMS int, stdout, stderr string) {
		t.Helper()
		args := []string{"netns", "exec", app.Name, filepath.Join(bin, "egress"), "run", "--rules", policy,
			"--catalog", catalog, "--format", "junit"}
		if block {
			args = append(args, "--block")
		}
		cmd := exec.CommandContext(ctx, "ip", append(args, "--", "sh", "-c", login)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		m := took.FindStringSubmatch(errb.String())
		if m == nil {
			t.Fatalf("the login did not run (block %v):\n%s", block, errb.String())
		}
		ms, _ := strconv.Atoi(m[1])
		return code, ms, out.String(), errb.String()
	}

	code, hangMS, out, stderr := run(false)
	_, failed := parseJUnit(t, out)
	// The lookup of the license server is a call of its own (issue 9).
	if code != ExitUnexpected || !cmpStrings(failed, []string{"api.vendor.test/dns", "edge.vendor.test:443/tcp"}) &&
		!cmpStrings(failed, []string{"api.vendor.test/dns", "api.vendor.test:443/tcp"}) {
		t.Errorf("without --block: exit %d, failed %q; want %d and the license check\n%s\n%s", code, failed, ExitUnexpected, out, stderr)
	}
	if hangMS < 4500 {
		t.Errorf("without --block the login took %d ms; want the 5 s connect timeout", hangMS)
	}
	if !strings.Contains(out, "Web shop version check at admin login") {
		t.Errorf("the catalog does not label the vendor's call:\n%s", out)
	}

	code, fastMS, out, stderr := run(true)
	_, failed = parseJUnit(t, out)
	if code != ExitUnexpected || !cmpStrings(failed, []string{"api.vendor.test/dns"}) {
		t.Errorf("with --block: exit %d, failed %q; want %d and the refused name\n%s\n%s", code, failed, ExitUnexpected, out, stderr)
	}
	if !strings.Contains(stderr, `check via go: 200 "latest=4.2.1"`) {
		t.Errorf("the allowed update check did not get through under --block:\n%s", stderr)
	}
	if fastMS > 1000 || fastMS*5 > hangMS {
		t.Errorf("with --block the login took %d ms against %d ms without: want well under a second", fastMS, hangMS)
	}
	t.Logf("admin login: %d ms hanging on the dropped license check, %d ms with --block", hangMS, fastMS)
}
