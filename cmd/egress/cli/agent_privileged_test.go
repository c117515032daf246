//go:build linux

package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// The agent test's network: an app namespace (198.19.77.2) and a server
// namespace (198.19.77.1, its DNS server) holding three destinations:
// allowed (.10, a web server), refused (.11, nothing listening: RST) and
// dropped (.12, an nftables drop: the SYNs go unanswered). Addresses apart
// from the other tests' so a host-wide agent cannot mix them up.
const (
	agentAllowed = "allowed.agent.test"
	agentRefused = "refused.agent.test"
	agentDropped = "dropped.agent.test"
)

type agentNet struct {
	app, srv *testnet.Namespace
	bins     string
}

func newAgentNet(t *testing.T) *agentNet {
	t.Helper()
	n := testnet.NewForTest(t, "curl", "nft", "prometheus", "podman", "runc", "bpftool")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	app, err := n.Namespace(ctx, "agapp")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := n.Namespace(ctx, "agsrv")
	if err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	for _, step := range []func() error{
		func() error { return n.Link(ctx, app, "eth0", srv, "eth0") },
		func() error { return app.Addr(ctx, "eth0", pfx("198.19.77.2/24")) },
		func() error { return srv.Addr(ctx, "eth0", pfx("198.19.77.1/24")) },
		func() error { return srv.Addr(ctx, "eth0", pfx("198.19.77.10/24")) },
		func() error { return srv.Addr(ctx, "eth0", pfx("198.19.77.11/24")) },
		func() error { return srv.Addr(ctx, "eth0", pfx("198.19.77.12/24")) },
		func() error { return app.Route(ctx, netip.Prefix{}, netip.MustParseAddr("198.19.77.1")) },
		func() error {
			return srv.Nft(ctx, "table inet agent {\n chain input {\n  type filter hook input priority 0;\n  ip daddr 198.19.77.12 tcp dport 80 drop\n }\n}\n")
		},
		func() error { return app.ResolvConf(netip.MustParseAddr("198.19.77.1"), "timeout:2 attempts:1") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	bins := testnet.Build(t, "github.com/egress-dev/egress/internal/testkit/testnet/dnsd",
		"github.com/egress-dev/egress/internal/testkit/testnet/vendord", "github.com/egress-dev/egress/internal/testkit/testnet/callout",
		"github.com/egress-dev/egress/cmd/egress")
	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("servers:\n%s", logs.String())
		}
	})
	args := append([]string{"-listen", "198.19.77.1:53"}, testnet.DNSArgs([]string{
		agentAllowed + " A 198.19.77.10", agentRefused + " A 198.19.77.11", agentDropped + " A 198.19.77.12"})...)
	if _, err := srv.StartListening(ctx, "udp", 53, filepath.Join(bins, "dnsd"), &logs, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.StartListening(ctx, "tcp", 80, filepath.Join(bins, "vendord"), &logs, "-http", "198.19.77.10:80", "-https", ""); err != nil {
		t.Fatal(err)
	}
	return &agentNet{app: app, srv: srv, bins: bins}
}

// freePort returns a loopback port free right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startAgent runs the egress binary's agent with args; stop sends SIGTERM
// and returns its exit error and stderr.
func startAgent(t *testing.T, bin string, args ...string) (pid int, stop func() (error, string)) {
	t.Helper()
	var stderr testnet.SyncBuffer
	cmd := exec.Command(bin, append([]string{"agent"}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() (error, string) {
		if stopped {
			return nil, stderr.String()
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err, stderr.String()
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("agent did not exit within 10 s of SIGTERM"), stderr.String()
		}
	}
	t.Cleanup(func() { stop() })
	// Attached when it says so.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "attached in") {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not attach:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd.Process.Pid, stop
}

// curlIn runs curl in the app namespace n times (failures expected).
func curlIn(t *testing.T, ns *testnet.Namespace, host string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ns.Run(ctx, "curl", "-s", "-o", "/dev/null", "--connect-timeout", "1", "http://"+host+"/check")
		cancel()
	}
}

// startPrometheus runs Debian's prometheus on loopback, scraping target
// every second; it returns the server's base URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: egress\n    static_configs:\n      - targets: ['%s']\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs testnet.SyncBuffer
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery runs an instant PromQL query and returns its vector as
// "label=value,..." -> value, with the labels given.
func promQuery(t *testing.T, base, q string, labels ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", q, r.Error)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		var k []string
		for _, l := range labels {
			k = append(k, s.Metric[l])
		}
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out[strings.Join(k, " ")] = v
	}
	return out
}

// TestPrivilegedAgentPrometheus: the agent, host-wide, sees curl in a
// namespace call out allowed, refused and dropped; a real Prometheus
// server scrapes it, and PromQL through its HTTP API counts the calls per
// destination and outcome. The JSON lines say the same, parse against the
// documented schema, and a SIGHUP swaps the rules; SIGTERM ends it cleanly.
func TestPrivilegedAgentPrometheus(t *testing.T) {
	an := newAgentNet(t)
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "allow.yaml")
	if err := os.WriteFile(rulesPath, []byte("allow:\n  - host: "+agentAllowed+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "calls.jsonl")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	agentPid, stop := startAgent(t, filepath.Join(an.bins, "egress"), "--metrics-listen", metricsAddr, "--output", out,
		"--max-size", "4096", "--max-files", "100000", "--rules", rulesPath, "--summary-every", "1s", "--netns-rescan", "200ms")
	prom := startPrometheus(t, metricsAddr)
	time.Sleep(500 * time.Millisecond) // the rescan finds the test's namespaces

	curlIn(t, an.app, agentAllowed, 3)
	curlIn(t, an.app, agentRefused, 2)
	curlIn(t, an.app, agentDropped, 1)
	// A Podman container in the app's namespace calls each once.
	ctr := runPodman(t, an, agentAllowed+":80", agentRefused+":80", agentDropped+":80")

	for _, tc := range []struct {
		container string
		want      map[string]float64
	}{
		{"", map[string]float64{agentAllowed + " established": 3, agentRefused + " refused": 2, agentDropped + " timeout": 1}},
		{ctr.name, map[string]float64{agentAllowed + " established": 1, agentRefused + " refused": 1, agentDropped + " timeout": 1}},
	} {
		q := fmt.Sprintf(`sum by (destination, outcome) (egress_calls_total{destination=~".*\\.agent\\.test", container=%q})`, tc.container)
		var got map[string]float64
		deadline := time.Now().Add(30 * time.Second)
		for {
			got = promQuery(t, prom, q, "destination", "outcome")
			if fmt.Sprint(got) == fmt.Sprint(tc.want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("PromQL %s:\n got %v\nwant %v", q, got, tc.want)
		}
	}
	unexpected := promQuery(t, prom, `sum by (destination) (egress_unexpected_calls_total{destination=~".*\\.agent\\.test"})`, "destination")
	if unexpected[agentRefused] != 3 || unexpected[agentDropped] != 2 || unexpected[agentAllowed] != 0 {
		t.Errorf("unexpected calls by destination: %v, want refused 3 and dropped 2", unexpected)
	}
	lost := promQuery(t, prom, `sum by (destination) (egress_lost_seconds_total{destination=~".*\\.agent\\.test"})`, "destination")
	if lost[agentDropped] < 1.8 || lost[agentAllowed] != 0 {
		t.Errorf("lost seconds by destination: %v, want about 1 s on the dropped destination (curl's --connect-timeout)", lost)
	}
	lookups := promQuery(t, prom, `sum by (name, outcome) (egress_lookups_total{name=~".*\\.agent\\.test"})`, "name", "outcome")
	if lookups[agentAllowed+" answered"] < 3 {
		t.Errorf("lookups: %v, want curl's 3 answered lookups of %s (A; AAAA are nodata)", lookups, agentAllowed)
	}
	for _, m := range []string{"egress_agent_events_lost_total", "egress_agent_flows_evicted_total", "egress_agent_lookups_evicted_total"} {
		health := promQuery(t, prom, m)
		if v, ok := health[""]; !ok || v != 0 {
			t.Errorf("%s: %v, want a series at 0", m, health)
		}
	}

	// SIGHUP: the refused destination is now allowed.
	if err := os.WriteFile(rulesPath, []byte("allow:\n  - host: \"*.agent.test\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(agentPid, syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	curlIn(t, an.app, agentRefused, 1)
	time.Sleep(500 * time.Millisecond)

	progs := heldPrograms(t, agentPid)
	if len(progs) < 9 {
		t.Errorf("the agent holds %d eBPF programs, want the tracer's 9 at least", len(progs))
	}
	err, stderr := stop()
	if err != nil {
		t.Fatalf("agent after SIGTERM: %v\n%s", err, stderr)
	}
	// Nothing stays attached: every program it held is gone from the kernel.
	for _, id := range progs {
		if out, err := exec.Command("bpftool", "prog", "show", "id", id).CombinedOutput(); err == nil {
			t.Errorf("program %s still loaded after the agent exited:\n%s", id, out)
		}
	}
	if !strings.Contains(stderr, "rules and catalog reloaded") {
		t.Errorf("no reload on SIGHUP:\n%s", stderr)
	}
	lines := readAgentLines(t, out)
	checkAgentLines(t, lines)
	var refusedVerdicts []bool
	counts, inContainer := map[string]int{}, map[string]int{}
	for _, m := range lines {
		if m["type"] != "connection" {
			continue
		}
		host, _ := m["host"].(string)
		if !strings.HasSuffix(host, ".agent.test") {
			continue
		}
		if c, ok := m["container"].(map[string]any); ok {
			if c["id"] != ctr.id || c["name"] != ctr.name || c["runtime"] != "podman" {
				t.Errorf("container of a call: %v, want id %s name %s runtime podman", c, ctr.id, ctr.name)
			}
			inContainer[host+" "+m["outcome"].(string)]++
			continue
		}
		counts[host+" "+m["outcome"].(string)]++
		if host == agentRefused {
			v, _ := m["verdict"].(map[string]any)
			refusedVerdicts = append(refusedVerdicts, v["expected"] == true)
		}
	}
	if counts[agentAllowed+" established"] != 3 || counts[agentRefused+" refused"] != 3 || counts[agentDropped+" timeout"] != 1 {
		t.Errorf("JSON lines by destination and outcome: %v", counts)
	}
	if inContainer[agentAllowed+" established"] != 1 || inContainer[agentRefused+" refused"] != 1 || inContainer[agentDropped+" timeout"] != 1 {
		t.Errorf("JSON lines of the container by destination and outcome: %v", inContainer)
	}
	if fmt.Sprint(refusedVerdicts) != "[false false true]" {
		t.Errorf("refused calls expected before and after SIGHUP: %v, want [false false true]", refusedVerdicts)
	}
	last := lines[len(lines)-1]
	if last["type"] != "summary" {
		t.Errorf("last line is %v, want the summary", last["type"])
	}
	// The summary is judged by report.Judge with the rules in use at the
	// end, as watch's is: audit (the agent fails nothing), the rules file.
	check, _ := last["check"].(map[string]any)
	if check["mode"] != "audit" || check["rules"] != rulesPath || check["failed"] != 0.0 || check["unexpected"] == nil {
		t.Errorf("summary check: %v, want mode audit, rules %s, failed 0, an unexpected count", check, rulesPath)
	}
}

// readAgentLines reads the output and its rotated files, oldest first.
func readAgentLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	var files []string
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	files = append(files, path)
	var lines []map[string]any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: a line does not parse: %v\n%s", f, err, sc.Text())
			}
			lines = append(lines, m)
		}
		fh.Close()
	}
	if len(files) < 2 {
		t.Errorf("the output was not rotated (--max-size 4096): %v", files)
	}
	return lines
}

// agentSchema is the jsonl schema of docs/json-schema.md for the agent:
// the fields each line type must have.
var agentSchema = map[string][]string{
	"connection": {"pid", "comm", "host", "name_source", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "start",
		"attempts", "syn_times_ms", "synacks", "rsts", "outcome", "end", "blocked_ms", "inferred", "end_basis", "loopback", "count"},
	"lookup":   {"pid", "comm", "name", "qtype", "client", "server", "transport", "start", "attempts", "outcome", "answers", "end", "blocked_ms", "inferred", "end_basis", "count"},
	"interval": {"from", "to", "outcomes", "totals", "health"},
	"summary":  {"schema_version", "source", "backend", "window", "headline", "local", "connections", "lookups", "hints", "stats", "errors"},
}

func checkAgentLines(t *testing.T, lines []map[string]any) {
	t.Helper()
	seen := map[string]int{}
	for i, m := range lines {
		typ, _ := m["type"].(string)
		fields, ok := agentSchema[typ]
		if !ok {
			t.Errorf("line %d: type %q not in the schema", i+1, typ)
			continue
		}
		seen[typ]++
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				t.Errorf("line %d (%s): no %q", i+1, typ, f)
			}
		}
		if c, ok := m["container"].(map[string]any); ok {
			if id, _ := c["id"].(string); len(id) != 64 {
				t.Errorf("line %d: container id %q", i+1, id)
			}
		}
		if typ == "summary" && i != len(lines)-1 {
			t.Errorf("line %d: summary before the end", i+1)
		}
	}
	for _, typ := range []string{"connection", "lookup", "interval", "summary"} {
		if seen[typ] == 0 {
			t.Errorf("no %s line", typ)
		}
	}
}

type podmanContainer struct{ id, name string }

// runPodman runs callout in a Podman container joined to the app's network
// namespace, from an image made here with podman import (no registry).
// Podman as installed here needs: runc (crun refuses the hybrid cgroup
// layout), the cgroupfs manager, and rlimits no higher than the caller's
// (without CAP_SYS_RESOURCE runc cannot raise them; podman's defaults would).
func runPodman(t *testing.T, an *agentNet, targets ...string) podmanContainer {
	t.Helper()
	return podmanCallout(t, an, true, "0s", targets...)
}

// podmanCallout creates the container and starts it, waiting for its end
// when attach is set; callout waits wait before its calls.
func podmanCallout(t *testing.T, an *agentNet, attach bool, wait string, targets ...string) podmanContainer {
	t.Helper()
	root := t.TempDir()
	tarPath := filepath.Join(root, "image.tar")
	b, err := os.ReadFile(filepath.Join(an.bins, "callout"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "callout", Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(b)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	image := fmt.Sprintf("localhost/egress-callout:test-%d", os.Getpid())
	podman := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	podman("import", tarPath, image)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	var nofile syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	name := fmt.Sprintf("egress-agent-test-%d", os.Getpid())
	args := []string{"create", "--name", name, "--network", "ns:/run/netns/" + an.app.Name,
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Max), "--ulimit", "nproc=4096:4096",
		image, "/callout", "-dns", "198.19.77.1:53", "-timeout", "1s", "-wait", wait}
	id := podman(append(args, targets...)...)
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", name).Run() })
	if !attach {
		podman("start", name)
		return podmanContainer{id: id, name: name}
	}
	out := podman("start", "--attach", name)
	t.Logf("container %s (%s): %s", name, id, out)
	return podmanContainer{id: id, name: name}
}

// TestPrivilegedWatchContainer: watch --container follows a running
// Podman container's processes by name, and by ID prefix, and reports its
// calls with their outcomes and names.
func TestPrivilegedWatchContainer(t *testing.T) {
	an := newAgentNet(t)
	for _, byID := range []bool{false, true} {
		ctr := podmanCallout(t, an, false, "2s", agentAllowed+":80", agentRefused+":80", agentDropped+":80")
		sel := ctr.name
		if byID {
			sel = ctr.id[:12]
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		var out, errb bytes.Buffer
		code := Main(ctx, []string{"watch", "--container", sel, "--duration", "5s", "--format", "json"}, nil, &out, &errb)
		cancel()
		if code != ExitOK {
			t.Fatalf("watch --container %s: exit %d\n%s", sel, code, errb.String())
		}
		var r struct {
			Source      string
			Connections []struct {
				Host    string
				Outcome string
				Comm    string
			}
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range r.Connections {
			got[c.Host] = c.Outcome + " " + c.Comm
		}
		want := map[string]string{agentAllowed: "established callout", agentRefused: "refused callout", agentDropped: "timeout callout"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("watch --container %s: calls %v, want %v\n%s", sel, got, want, errb.String())
		}
		if !strings.Contains(r.Source, ctr.id[:12]) {
			t.Errorf("source %q does not name the container", r.Source)
		}
		exec.Command("podman", "rm", "-f", ctr.name).Run()
	}
}

// heldPrograms lists the eBPF program ids whose fds a process holds
// (the prog_id lines of /proc/PID/fdinfo: programs and links).
func heldPrograms(t *testing.T, pid int) []string {
	t.Helper()
	infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	seen := map[string]bool{}
	var ids []string
	for _, f := range infos {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if id, ok := strings.CutPrefix(line, "prog_id:"); ok {
				id = strings.TrimSpace(id)
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}
