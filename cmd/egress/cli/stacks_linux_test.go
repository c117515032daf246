//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// stackApp is one test program of --stacks: started in the app namespace,
// it calls the dropped vendor from a known function on each SIGUSR2.
type stackApp struct {
	name string
	// build returns the command line (program first) in dir.
	build func(t *testing.T, dir string) []string
	// calledFrom matches the connection's called_from.
	calledFrom *regexp.Regexp
	// hint: the report must carry a stack-unnamed hint (no symbols or
	// frame pointers).
	hint bool
}

// goCallSiteLine is the line of the Dial in stackapp's checkForUpdates,
// found by its text so an edit of the program cannot silently pass.
func goCallSiteLine(t *testing.T) int {
	return lineOf(t, "../../../internal/testkit/testnet/stackapp/main.go", "net.DialTimeout")
}

// lineOf is the number of the first line of path that contains text.
func lineOf(t *testing.T, path, text string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), text) {
			return n
		}
	}
	t.Fatalf("%s has no %q", path, text)
	return 0
}

func clang(t *testing.T, out string, flags ...string) {
	t.Helper()
	src, err := filepath.Abs("testdata/stacks/phonehome.c")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("clang", append(flags, "-o", out, src)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang %v: %v\n%s", flags, err, b)
	}
}

func stackApps(t *testing.T) []stackApp {
	return []stackApp{
		{
			name: "go",
			build: func(t *testing.T, dir string) []string {
				bin := testnet.Build(t, "github.com/egress-dev/egress/internal/testkit/testnet/stackapp")
				return []string{filepath.Join(bin, "stackapp"), "-vendor", "198.51.100.10:80", "-connect-timeout", "1s"}
			},
			calledFrom: regexp.MustCompile(`^main\.checkForUpdates \(main\.go:` + strconv.Itoa(goCallSiteLine(t)) + `\)$`),
		},
		{
			name: "c",
			build: func(t *testing.T, dir string) []string {
				out := filepath.Join(dir, "phonehome")
				clang(t, out, "-O1", "-g", "-fno-omit-frame-pointer")
				return []string{out, "198.51.100.10", "80"}
			},
			// Built with -g: the DWARF line table gives the connect()'s line.
			calledFrom: regexp.MustCompile(`^check_for_updates \(phonehome\.c:` +
				strconv.Itoa(lineOf(t, "testdata/stacks/phonehome.c", "= connect(fd")) + `\)$`),
		},
		{
			name: "c_stripped_no_frame_pointers",
			build: func(t *testing.T, dir string) []string {
				out := filepath.Join(dir, "phonehome-stripped")
				clang(t, out, "-O2", "-fomit-frame-pointer", "-s")
				return []string{out, "198.51.100.10", "80"}
			},
			// No name, and never a wrong one: module+offset.
			calledFrom: regexp.MustCompile(`^phonehome-stripped\+0x[0-9a-f]+$`),
			hint:       true,
		},
		{
			name: "node",
			build: func(t *testing.T, dir string) []string {
				script, err := filepath.Abs("testdata/stacks/phonehome.js")
				if err != nil {
					t.Fatal(err)
				}
				// --perf-basic-prof also turns on V8's log: keep it out of the tree.
				return []string{"node", "--perf-basic-prof", "--interpreted-frames-native-stack",
					"--no-logfile-per-isolate", "--logfile=" + filepath.Join(dir, "v8.log"), script, "198.51.100.10", "80"}
			},
			// Perf maps name a JIT function and the line it starts at.
			calledFrom: regexp.MustCompile(`^phoneHome \(phonehome\.js:\d+\)$`),
		},
	}
}

// TestPrivilegedWatchStacks runs the Go, C and Node.js test programs in the
// story's app namespace, whose firewall drops the vendor, and watches each
// with --stacks while a signal makes it call out: the live JSON names the
// calling function (Go: file and line too), the pcapng file replays to the
// same report, and its table and HTML show the function in "called from".
func TestPrivilegedWatchStacks(t *testing.T) {
	testnet.RequirePrivileged(t, "nft", "clang", "node")
	for _, app := range stackApps(t) {
		t.Run(app.name, func(t *testing.T) { runStackApp(t, app) })
	}
}

func runStackApp(t *testing.T, app stackApp) {
	n := testnet.NewForTest(t, "nft")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := testnet.Story(ctx, n)
	must(err)
	must(hosts.App.Nft(ctx, `table inet egress_test { chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 198.51.100.0/24 tcp dport 80 drop
	}
	}`))
	argv := app.build(t, t.TempDir())
	var logs testnet.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app output:\n%s", logs.String())
		}
	})
	p, err := hosts.App.Start(argv[0], &logs, argv[1:]...)
	must(err)
	pid := p.Cmd.Process.Pid
	t.Cleanup(func() { os.Remove(fmt.Sprintf("/tmp/perf-%d.map", pid)) })
	for i := 0; !strings.Contains(logs.String(), "ready"); i++ {
		if i == 100 {
			t.Fatalf("%s never got ready", argv[0])
		}
		time.Sleep(50 * time.Millisecond)
	}

	pcap := filepath.Join(t.TempDir(), "stacks.pcapng")
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"watch", "--pid", strconv.Itoa(pid), "--stacks", "--trigger", fmt.Sprintf("kill -USR2 %d", pid),
		"--grace", "2s", "--format", "json", "--write", pcap}, nil, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("egress watch exit %d; stderr:\n%s", code, stderr.String())
	}
	var r report.Report
	must(json.Unmarshal(stdout.Bytes(), &r))
	if len(r.Connections) != 1 {
		t.Fatalf("want the one update check, got %s", connList(&r))
	}
	c := r.Connections[0]
	t.Logf("called from %q (%d frames); headline %q", c.CalledFrom, len(c.Stack), r.Headline)
	if c.DstIP.String() != "198.51.100.10" || c.DstPort != 80 || c.Outcome != report.Timeout {
		t.Errorf("call %s:%d %s, want a timeout to 198.51.100.10:80", c.DstIP, c.DstPort, c.Outcome)
	}
	if !app.calledFrom.MatchString(c.CalledFrom) {
		t.Errorf("called_from %q, want %v; stack:\n%s", c.CalledFrom, app.calledFrom, stackList(c.Stack))
	}
	if len(c.Stack) == 0 {
		t.Fatal("no stack")
	}
	if !strings.Contains(r.Headline, "called from "+c.CalledFrom) {
		t.Errorf("headline %q does not name the call site %q", r.Headline, c.CalledFrom)
	}
	// The live report as a table and as HTML (what --format table|html
	// would print for it).
	var liveTable, liveHTML bytes.Buffer
	must(report.WriteTable(&liveTable, &r, report.TableOptions{}))
	must(report.WriteHTML(&liveHTML, &r))
	if !strings.Contains(liveTable.String(), "CALLED FROM") || !strings.Contains(liveTable.String(), c.CalledFrom) {
		t.Errorf("live table has no called-from column naming %q:\n%s", c.CalledFrom, liveTable.String())
	}
	if !strings.Contains(liveHTML.String(), ">"+template(c.CalledFrom)+"</td>") {
		t.Errorf("live HTML has no called-from cell %q", c.CalledFrom)
	}
	hinted := false
	for _, h := range r.Hints {
		hinted = hinted || h.Kind == "stack-unnamed"
	}
	if hinted != app.hint {
		t.Errorf("stack-unnamed hint %v, want %v: %+v", hinted, app.hint, r.Hints)
	}

	// The round trip: the file's comments carry the stacks.
	rd, err := pcapfile.Open(pcap)
	must(err)
	wi, ok := rd.Watch()
	rd.Close()
	if !ok {
		t.Fatal("the pcapng file does not record the watch window")
	}
	edge := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	replay := func(format string) []byte {
		var out, errb bytes.Buffer
		if code := Main(ctx, []string{"replay", pcap, "--format", format, "--from", edge(wi.From), "--to", edge(wi.To)}, nil, &out, &errb); code != ExitOK {
			t.Fatalf("replay --format %s: exit %d: %s", format, code, errb.String())
		}
		return out.Bytes()
	}
	var live, replayed map[string]any
	must(json.Unmarshal(stdout.Bytes(), &live))
	must(json.Unmarshal(replay("json"), &replayed))
	for _, m := range []map[string]any{live, replayed} {
		delete(m, "source")
		delete(m, "backend")
	}
	if diff := cmp.Diff(live, replayed); diff != "" {
		t.Errorf("replay differs from the live report (-live +replay):\n%s", diff)
	}
	table := string(replay("table"))
	if !strings.Contains(table, "CALLED FROM") || !strings.Contains(table, c.CalledFrom) {
		t.Errorf("table has no called-from column naming %q:\n%s", c.CalledFrom, table)
	}
	html := string(replay("html"))
	if !strings.Contains(html, "<th>called from</th>") || !strings.Contains(html, ">"+template(c.CalledFrom)+"</td>") {
		t.Errorf("HTML has no called-from cell %q", c.CalledFrom)
	}
}

// template escapes s as html/template does in element text.
func template(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

func stackList(fs []report.Frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s:%d %s+%#x\n", f.Function, f.File, f.Line, f.Module, f.Offset)
	}
	return b.String()
}

// TestPrivilegedRunStacks: egress run --stacks names the Go function that
// made the dropped call of the command it runs (in the story's app
// namespace, whose firewall drops the vendor).
func TestPrivilegedRunStacks(t *testing.T) {
	testnet.RequirePrivileged(t, "nft")
	n := testnet.NewForTest(t, "nft")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	hosts, err := testnet.Story(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := hosts.App.Nft(ctx, `table inet egress_test { chain output {
		type filter hook output priority filter; policy accept;
		ip daddr 198.51.100.0/24 tcp dport 80 drop
	}
	}`); err != nil {
		t.Fatal(err)
	}
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress", "github.com/egress-dev/egress/internal/testkit/testnet/stackapp")
	out, err := hosts.App.Command(ctx, filepath.Join(bin, "egress"), "run", "--stacks", "--mode", "audit", "--format", "json", "--",
		filepath.Join(bin, "stackapp"), "-now", "-vendor", "198.51.100.10:80", "-connect-timeout", "1s").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("egress run: %v\n%s", err, stderr)
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("run JSON: %v\n%s", err, out)
	}
	want := "main.checkForUpdates (main.go:" + strconv.Itoa(goCallSiteLine(t)) + ")"
	var got []string
	for _, c := range r.Connections {
		if c.DstIP.String() == "198.51.100.10" {
			got = append(got, c.Outcome.String()+" "+c.CalledFrom)
		}
	}
	if len(got) != 1 || got[0] != report.Timeout.String()+" "+want {
		t.Errorf("calls to the vendor: %q, want one timeout called from %q", got, want)
	}
}
