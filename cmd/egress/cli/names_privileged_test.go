//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// lossNet is an app namespace whose resolver (dnsd, in srv) answers
// telemetry.nextjs.org and registry.npmjs.org with one address, to which
// the app's own firewall silently drops HTTPS.
type lossNet struct {
	app *testnet.Namespace
	bin string // egress, dnsd
	dir string // curl links and scripts
}

func newLossNet(t *testing.T) *lossNet {
	t.Helper()
	n := testnet.NewForTest(t, "nft", "curl", "sh", "python3")
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress", "github.com/egress-dev/egress/internal/testkit/testnet/dnsd")
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
	must(srv.Addr(ctx, "eth0", pfx(sharedAddr+"/32")))
	must(app.Route(ctx, pfx(sharedAddr+"/32"), netip.MustParseAddr("198.18.0.1")))
	must(app.Nft(ctx, `
table inet egress_names_test {
	chain out {
		type filter hook output priority filter; policy accept;
		ip daddr `+sharedAddr+` tcp dport 443 drop
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
		"-rr", "telemetry.nextjs.org A "+sharedAddr, "-rr", "registry.npmjs.org A "+sharedAddr)
	must(err)
	// Each name is fetched by its own command name, so the report's comm
	// says which name a connection's process looked up.
	dir := t.TempDir()
	curl, err := exec.LookPath("curl")
	must(err)
	for _, l := range []string{"telemetry-curl", "registry-curl"} {
		must(os.Symlink(curl, filepath.Join(dir, l)))
	}
	for i := 0; ; i++ {
		if _, err := app.Run(ctx, "sh", "-c", "getent hosts registry.npmjs.org"); err == nil {
			break
		} else if i == 50 {
			t.Fatalf("dnsd does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &lossNet{app: app, bin: bin, dir: dir}
}

// concurrentLoad is issue 8's minimal case: 8 pairs of calls in parallel,
// each from its own process, to two names sharing one address.
func (n *lossNet) concurrentLoad() string {
	return fmt.Sprintf(`for i in 1 2 3 4 5 6 7 8; do %[1]s/telemetry-curl -s -m 2 https://telemetry.nextjs.org/ & %[1]s/registry-curl -s -m 2 https://registry.npmjs.org/ & done; wait`, n.dir)
}

// treeLoad is the same load where each name is looked up by a sibling
// (getent) of the process that connects (curl --resolve asks no DNS): the
// name follows the asker's process tree.
func (n *lossNet) treeLoad() string {
	one := func(name, prog string) string {
		return fmt.Sprintf(`sh -c 'getent ahostsv4 %[1]s >/dev/null; %[2]s/%[3]s -s -m 2 --resolve %[1]s:443:%[4]s https://%[1]s/' &`, name, n.dir, prog, sharedAddr)
	}
	return "for i in 1 2 3 4 5 6 7 8; do " + one("telemetry.nextjs.org", "telemetry-curl") + " " + one("registry.npmjs.org", "registry-curl") + " done; wait"
}

// namedByOwnLookup counts the calls named by their own process's lookup:
// a telemetry-curl's call must be telemetry.nextjs.org, from DNS.
func namedByOwnLookup(t *testing.T, what string, r *report.Report) {
	t.Helper()
	namedByTree(t, what, r)
	for _, l := range r.Lookups {
		if l.Comm != nil && !strings.HasSuffix(*l.Comm, "-curl") {
			t.Errorf("%s: lookup of %s by %q, want the curl that asked", what, l.Name, *l.Comm)
		}
	}
}

// namedByTree checks that every call to the shared address is named by
// the lookup of its own process or tree, and every lookup has a process.
func namedByTree(t *testing.T, what string, r *report.Report) {
	t.Helper()
	right, total := 0, 0
	var wrong []string
	for _, c := range r.Connections {
		if c.DstIP.String() != sharedAddr || c.Comm == nil {
			continue
		}
		total++
		want := strings.TrimSuffix(*c.Comm, "-curl")
		switch want {
		case "telemetry":
			want = "telemetry.nextjs.org"
		case "registry":
			want = "registry.npmjs.org"
		}
		if c.Host == want && c.NameSource == report.SourceDNS {
			right++
		} else {
			wrong = append(wrong, fmt.Sprintf("%s[%d] named %q (%s)", *c.Comm, deref(c.PID), c.Host, c.NameSource))
		}
	}
	if total != 16 || right != 16 {
		t.Errorf("%s: %d of %d calls named by their own lookup, want 16 of 16: %s", what, right, total, strings.Join(wrong, "; "))
	}
	for _, l := range r.Lookups {
		if l.PID == nil {
			t.Errorf("%s: lookup of %s (%s) has no process", what, l.Name, l.QType)
		}
	}
}

// watchTrigger starts a shell in the app namespace that runs script when
// the trigger tells it to, and returns its pid and the trigger command.
func (n *lossNet) watched(t *testing.T, script string) (int, string) {
	t.Helper()
	fifo := filepath.Join(n.dir, "go")
	done := filepath.Join(n.dir, "done")
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Fatal(err)
	}
	var logs testnet.SyncBuffer
	p, err := n.app.Start("sh", &logs, "-c", fmt.Sprintf("read x < %s; %s; touch %s", fifo, script, done))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watched app output:\n%s", logs.String())
		}
	})
	time.Sleep(200 * time.Millisecond)
	return p.Cmd.Process.Pid, fmt.Sprintf("echo go > %s; i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done", fifo, done)
}

func (n *lossNet) watch(t *testing.T, pid int, trigger string, write string) *report.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"watch", "--pid", strconv.Itoa(pid), "--trigger", trigger, "--grace", "500ms", "--format", "json"}
	if write != "" {
		args = append(args, "--write", write)
	}
	if code := Main(ctx, args, nil, &stdout, &stderr); code != ExitOK {
		t.Fatalf("egress watch exit %d:\n%s", code, stderr.String())
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("watch JSON: %v\n%s", err, stdout.String())
	}
	return &r
}

func (n *lossNet) run(t *testing.T, flags []string, cmd ...string) (*report.Report, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append([]string{"netns", "exec", n.app.Name, filepath.Join(n.bin, "egress"), "run", "--format", "json"}, flags...)
	args = append(append(args, "--"), cmd...)
	c := exec.CommandContext(ctx, "ip", args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("egress run: %v", err)
	}
	var r report.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("run JSON (exit %d): %v\n%s\nstderr:\n%s", code, err, out.String(), errb.String())
	}
	return &r, code, errb.String()
}

// TestPrivilegedNamesConcurrent: 16 calls in parallel from 16 processes to
// two names sharing one address are each named by their own lookup, in
// watch, in the replay of watch's file (a pcapng with process comments)
// and in run; with an allowlist of exactly those two names, run passes.
func TestPrivilegedNamesConcurrent(t *testing.T) {
	n := newLossNet(t)
	t.Run("watch_and_replay", func(t *testing.T) {
		pid, trigger := n.watched(t, n.concurrentLoad())
		pcap := filepath.Join(t.TempDir(), "names.pcapng")
		r := n.watch(t, pid, trigger, pcap)
		namedByOwnLookup(t, "watch", r)
		rd, err := pcapfile.Open(pcap)
		if err != nil {
			t.Fatal(err)
		}
		wi, _ := rd.Watch()
		rd.Close()
		edge := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
		var rout, rerr bytes.Buffer
		if code := Main(t.Context(), []string{"replay", pcap, "--format", "json", "--from", edge(wi.From), "--to", edge(wi.To)}, nil, &rout, &rerr); code != ExitOK {
			t.Fatalf("replay: exit %d: %s", code, rerr.String())
		}
		var rr report.Report
		if err := json.Unmarshal(rout.Bytes(), &rr); err != nil {
			t.Fatal(err)
		}
		namedByOwnLookup(t, "replay", &rr)
	})
	t.Run("run", func(t *testing.T) {
		r, code, stderr := n.run(t, []string{"--rules", filepath.Join(rulesDir, "allow-both.yaml")}, "sh", "-c", n.concurrentLoad())
		namedByOwnLookup(t, "run", r)
		if code != 0 {
			t.Errorf("egress run with an allowlist of exactly the calls made: exit %d, want 0:\n%s", code, stderr)
		}
	})
	t.Run("tree_watch_and_replay", func(t *testing.T) {
		os.Remove(filepath.Join(n.dir, "go"))
		os.Remove(filepath.Join(n.dir, "done"))
		pid, trigger := n.watched(t, n.treeLoad())
		pcap := filepath.Join(t.TempDir(), "tree.pcapng")
		namedByTree(t, "watch", n.watch(t, pid, trigger, pcap))
		rd, err := pcapfile.Open(pcap)
		if err != nil {
			t.Fatal(err)
		}
		wi, _ := rd.Watch()
		rd.Close()
		edge := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
		var rout, rerr bytes.Buffer
		if code := Main(t.Context(), []string{"replay", pcap, "--format", "json", "--from", edge(wi.From), "--to", edge(wi.To)}, nil, &rout, &rerr); code != ExitOK {
			t.Fatalf("replay: exit %d: %s", code, rerr.String())
		}
		var rr report.Report
		if err := json.Unmarshal(rout.Bytes(), &rr); err != nil {
			t.Fatal(err)
		}
		namedByTree(t, "replay", &rr)
	})
	t.Run("tree_run", func(t *testing.T) {
		r, _, _ := n.run(t, nil, "sh", "-c", n.treeLoad())
		namedByTree(t, "run", r)
	})
}

// leaderCommApp looks a name up on a thread renamed "resolver-thr" (as
// Node's libuv workers are named apart from the process), then connects
// from the main thread.
const leaderCommApp = `
import ctypes, socket, threading
libc = ctypes.CDLL(None)
def look():
    libc.prctl(15, b"resolver-thr", 0, 0, 0)
    socket.getaddrinfo("telemetry.nextjs.org", 443, socket.AF_INET, socket.SOCK_STREAM)
t = threading.Thread(target=look)
t.start(); t.join()
try:
    socket.create_connection(("` + sharedAddr + `", 443), timeout=0.5)
except OSError:
    pass
`

// TestPrivilegedLookupLeaderComm: a lookup carries the comm of its
// process (the thread-group leader's), as its connections do, in run and
// watch.
func TestPrivilegedLookupLeaderComm(t *testing.T) {
	n := newLossNet(t)
	check := func(t *testing.T, what string, r *report.Report) {
		t.Helper()
		if len(r.Lookups) == 0 {
			t.Fatalf("%s: no lookups", what)
		}
		for _, l := range r.Lookups {
			if l.Comm == nil || *l.Comm != "python3" {
				t.Errorf("%s: lookup of %s by %v, want python3 (the leader)", what, l.Name, deref(l.Comm))
			}
		}
		for _, c := range r.Connections {
			if c.DstIP.String() == sharedAddr && (c.Host != "telemetry.nextjs.org" || c.Comm == nil || *c.Comm != "python3") {
				t.Errorf("%s: connection %s by %v", what, c.Host, deref(c.Comm))
			}
		}
	}
	t.Run("run", func(t *testing.T) {
		r, _, _ := n.run(t, nil, "python3", "-c", leaderCommApp)
		check(t, "run", r)
	})
	t.Run("watch", func(t *testing.T) {
		script := filepath.Join(n.dir, "leader.py")
		if err := os.WriteFile(script, []byte(leaderCommApp), 0o644); err != nil {
			t.Fatal(err)
		}
		pid, trigger := n.watched(t, "python3 "+script)
		check(t, "watch", n.watch(t, pid, trigger, ""))
	})
}

// sendtoLookupApp asks the resolver over an unconnected UDP socket
// (sendto, as c-ares and some runtimes do): no connect() names its process
// in the kernel; the DNS proxy still finds it in /proc while the socket
// waits for the answer.
const sendtoLookupApp = `
import socket, struct
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "registry.npmjs.org".split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, ("198.18.0.1", 53))
s.recvfrom(512)
`

// TestPrivilegedRunLookupProcess: every lookup egress run's DNS proxy
// relays has a process, also one sent with sendto() on an unconnected
// socket.
func TestPrivilegedRunLookupProcess(t *testing.T) {
	n := newLossNet(t)
	r, code, stderr := n.run(t, nil, "python3", "-c", sendtoLookupApp)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if len(r.Lookups) != 1 {
		t.Fatalf("%d lookups, want 1", len(r.Lookups))
	}
	if l := r.Lookups[0]; l.PID == nil || l.Comm == nil || *l.Comm != "python3" || l.Outcome != report.Answered {
		t.Errorf("lookup %s %s by pid %v comm %v, want answered and python3's", l.Name, l.Outcome, deref(l.PID), deref(l.Comm))
	}
}

// nextStyleBuild is a Next.js-style build in one Node process: it renames
// itself (as next build does), fires telemetry and registry calls that
// share one address, computes for a second, then waits for them. Its
// lookups run on libuv worker threads, its connects on the main thread.
const nextStyleBuild = `
const https = require('https');
process.title = 'next-build';
function call(host) {
  return new Promise(done => {
    const req = https.get({ host, path: '/', timeout: 1500 }, res => { res.resume(); done(); });
    req.on('timeout', () => { req.destroy(); });
    req.on('error', () => done());
  });
}
const calls = [];
for (let i = 0; i < 4; i++) {
  calls.push(call('telemetry.nextjs.org'));
  calls.push(call('registry.npmjs.org'));
}
const t = Date.now();
while (Date.now() - t < 1000) {}
Promise.all(calls).then(() => process.exit(0));
`

// TestPrivilegedRunNextStyleBuild: a Next.js-style build under egress run
// with an allowlist of exactly what it calls passes; its calls split four
// and four between the two names, each from DNS, and its lookups carry
// the process's name, not the worker threads'.
func TestPrivilegedRunNextStyleBuild(t *testing.T) {
	testnet.RequirePrivileged(t, "node")
	n := newLossNet(t)
	script := filepath.Join(n.dir, "build.js")
	if err := os.WriteFile(script, []byte(nextStyleBuild), 0o644); err != nil {
		t.Fatal(err)
	}
	r, code, stderr := n.run(t, []string{"--rules", filepath.Join(rulesDir, "allow-both.yaml")}, "node", script)
	if code != 0 {
		t.Errorf("exit %d, want 0 (everything it calls is allowed):\n%s", code, stderr)
	}
	names := map[string]int{}
	for _, c := range r.Connections {
		if c.DstIP.String() != sharedAddr {
			continue
		}
		if c.NameSource != report.SourceDNS || c.Comm == nil || *c.Comm != "next-build" {
			t.Errorf("call %s (%s) by %v", c.Host, c.NameSource, deref(c.Comm))
		}
		names[c.Host]++
	}
	if names["telemetry.nextjs.org"] != 4 || names["registry.npmjs.org"] != 4 {
		t.Errorf("calls by name %v, want 4 and 4", names)
	}
	for _, l := range r.Lookups {
		if l.Comm == nil || *l.Comm != "next-build" {
			t.Errorf("lookup of %s by %v, want next-build", l.Name, deref(l.Comm))
		}
	}
	t.Logf("headline: %s", r.Headline)
}
