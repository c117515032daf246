package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/report"
)

var update = flag.Bool("update", false, "rewrite the golden reports under testdata/golden")

const capturesDir = "../../../testdata/captures"
const goldenDir = "../../../testdata/golden"

func runMain(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func captures(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(capturesDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no captures in %s", capturesDir)
	}
	return files
}

// TestGolden replays every recorded capture and compares the table and the
// JSON with the committed golden reports (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, f := range captures(t) {
		base := filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			for _, format := range []string{"table", "json"} {
				code, out, stderr := runMain(t, nil, "replay", f, "--format", format)
				if code != ExitOK {
					t.Fatalf("replay %s --format %s: exit %d, stderr %s", base, format, code, stderr)
				}
				// The source path depends on where the test runs from.
				out = strings.ReplaceAll(out, f, "testdata/captures/"+base)
				ext := ".txt"
				if format == "json" {
					ext = ".json"
				}
				golden := filepath.Join(goldenDir, base+ext)
				if *update {
					if err := os.MkdirAll(goldenDir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./cmd/egress/cli -run TestGolden -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), out); diff != "" {
					t.Errorf("%s differs from golden (-want +got):\n%s", golden, diff)
				}
			}
		})
	}
}

func decodeReport(t *testing.T, s string) *report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("json report does not parse: %v\n%s", err, s)
	}
	return &r
}

// TestStory checks the product's promise on the story capture: both dropped
// vendor calls, their attempts and blocked time, and the share of the login,
// in the first line.
func TestStory(t *testing.T) {
	code, out, _ := runMain(t, nil, "replay", filepath.Join(capturesDir, "story-drop-path.pcap"))
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	for _, want := range []string{"updates.vendor.test:80 (3 SYNs", "api.vendor.test:443 (3 SYNs", "2 unanswered calls", "window was blocked 6.0 s (9"} {
		if !strings.Contains(first, want) {
			t.Errorf("headline %q does not contain %q", first, want)
		}
	}
	code, out, _ = runMain(t, nil, "replay", "--format=json", filepath.Join(capturesDir, "story-drop-path.pcap"))
	r := decodeReport(t, out)
	if code != ExitOK || len(r.Connections) != 2 {
		t.Fatalf("exit %d, %d connections, want 0 and 2", code, len(r.Connections))
	}
	for _, c := range r.Connections {
		if c.Outcome != report.Timeout || c.Attempts != 3 || c.BlockedMS < 2900 || c.BlockedMS > 3200 || c.NameSource != report.SourceDNS {
			t.Errorf("connection %s:%d: outcome %s, %d SYNs, blocked %.0f ms, name from %s; want timeout, 3, about 3000 ms (the app's 3 s connect timeout), dns",
				c.Host, c.DstPort, c.Outcome, c.Attempts, c.BlockedMS, c.NameSource)
		}
	}
}

// TestJSONFields pins the field names the issue and docs/json-schema.md promise.
func TestJSONFields(t *testing.T) {
	_, out, _ := runMain(t, nil, "replay", "-o", "json", filepath.Join(capturesDir, "story-drop-path.pcap"))
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	need := func(obj map[string]any, where string, keys ...string) {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s lacks %q", where, k)
			}
		}
	}
	need(doc, "report", "schema_version", "window", "connections", "lookups", "stats", "headline", "errors", "hints")
	need(doc["window"].(map[string]any), "window", "start", "end", "duration_ms", "blocked_ms")
	need(doc["stats"].(map[string]any), "stats", "packets", "bytes", "undecodable", "flows_evicted")
	conns := doc["connections"].([]any)
	if len(conns) == 0 {
		t.Fatal("no connections")
	}
	need(conns[0].(map[string]any), "connection", "pid", "comm", "host", "name_source", "src_ip", "src_port", "dst_ip",
		"dst_port", "proto", "start", "attempts", "outcome", "blocked_ms", "inferred")
	lks := doc["lookups"].([]any)
	need(lks[0].(map[string]any), "lookup", "pid", "comm", "name", "qtype", "server", "start", "attempts", "outcome", "answers", "blocked_ms")
	if c := conns[0].(map[string]any); c["pid"] != nil || c["comm"] != nil {
		t.Errorf("pid/comm = %v/%v, want null where unknown", c["pid"], c["comm"])
	}
}

func TestExitCodes(t *testing.T) {
	story := filepath.Join(capturesDir, "story-drop-path.pcap")
	established := filepath.Join(capturesDir, "established.pcap")
	tests := []struct {
		name string
		args []string
		want int
		errs string
	}{
		{"no args", []string{"replay"}, ExitUsage, "accepts 1 arg"},
		{"unknown flag", []string{"replay", story, "--nope"}, ExitUsage, "unknown flag"},
		{"bad format", []string{"replay", story, "--format", "xml"}, ExitUsage, "unknown --format"},
		{"bad local", []string{"replay", story, "--local", "nowhere"}, ExitUsage, "neither an address nor a CIDR"},
		{"bad from", []string{"replay", story, "--from", "yesterday"}, ExitUsage, "RFC 3339"},
		{"bad fail-on", []string{"replay", story, "--fail-on", "slow"}, ExitUsage, "unknown --fail-on"},
		{"missing file", []string{"replay", "/nonexistent.pcap"}, ExitUsage, "no such file"},
		{"not a capture", []string{"replay", "cli.go"}, ExitUsage, "not a pcap or pcapng file"},
		{"findings", []string{"replay", story, "--fail-on", "timeout"}, ExitFindings, "2 destination(s) fail the check: updates.vendor.test:80/tcp (timeout); api.vendor.test:443/tcp (timeout)"},
		{"no findings", []string{"replay", established, "--fail-on", "failed"}, ExitOK, ""},
		{"findings in the window only", []string{"replay", story, "--fail-on", "timeout", "--to", "100ms"}, ExitOK, ""},
		{"inverted window", []string{"replay", story, "--from", "2s", "--to", "1s"}, ExitUsage, "before it starts (--from"},
		{"window after the capture", []string{"replay", story, "--from", "1h"}, ExitUsage, "the capture spans"},
		{"window before the capture", []string{"replay", story, "--to", "2001-01-01T00:00:00Z"}, ExitUsage, "before the capture starts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runMain(t, nil, tc.args...)
			if code != tc.want || !strings.Contains(stderr, tc.errs) {
				t.Errorf("exit %d stderr %q, want exit %d and %q", code, stderr, tc.want, tc.errs)
			}
		})
	}
}

// TestDamagedCapture: a truncated file gives the partial report, a clear
// error and exit 2.
func TestDamagedCapture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(capturesDir, "story-drop-path.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runMain(t, nil, "replay", cut, "--format", "json")
	if code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(stderr, "the report covers the packets before it") {
		t.Errorf("stderr %q does not explain the partial report", stderr)
	}
	r := decodeReport(t, out)
	if len(r.Errors) != 1 || r.Stats.Packets == 0 || len(r.Connections) == 0 {
		t.Errorf("partial report: errors %q, %d packets, %d connections; want 1 error and the calls before the cut",
			r.Errors, r.Stats.Packets, len(r.Connections))
	}
}

// TestGzipAndStdin: the same capture gzip-compressed, and through stdin,
// gives the same report.
func TestGzipAndStdin(t *testing.T) {
	path := filepath.Join(capturesDir, "story-drop-nflog.pcap")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := runMain(t, nil, "replay", path, "--format", "json")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	gzPath := filepath.Join(t.TempDir(), "story.pcap.gz")
	if err := os.WriteFile(gzPath, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	normalize := func(s string) string {
		r := decodeReport(t, s)
		r.Source, r.Backend = "", ""
		b, _ := json.MarshalIndent(r, "", " ")
		return string(b)
	}
	_, gotGz, _ := runMain(t, nil, "replay", gzPath, "--format", "json")
	_, gotStdin, _ := runMain(t, gz.Bytes(), "replay", "-", "--format", "json")
	for name, got := range map[string]string{"gzip": gotGz, "stdin": gotStdin} {
		if diff := cmp.Diff(normalize(want), normalize(got)); diff != "" {
			t.Errorf("%s report differs (-plain +%s):\n%s", name, name, diff)
		}
	}
}

// TestFirewallOnCapturingHost: the same login recorded through NFLOG shows
// the dropped SYNs; recorded with -i any it shows none, and the report says
// why the resolved vendor names were never contacted.
func TestFirewallOnCapturingHost(t *testing.T) {
	_, out, _ := runMain(t, nil, "replay", "-o", "json", filepath.Join(capturesDir, "story-drop-nflog.pcap"))
	r := decodeReport(t, out)
	if len(r.Connections) != 2 || r.Connections[0].Outcome != report.Timeout || r.Connections[1].Outcome != report.Timeout {
		t.Errorf("nflog capture: %d connections, want the 2 timed-out vendor calls", len(r.Connections))
	}
	if len(r.Hints) != 0 {
		t.Errorf("nflog capture: unexpected hints %+v", r.Hints)
	}
	_, out, _ = runMain(t, nil, "replay", "-o", "json", filepath.Join(capturesDir, "story-drop-any.pcap"))
	r = decodeReport(t, out)
	if len(r.Connections) != 0 {
		t.Errorf("-i any capture: %d connections, want none (the firewall dropped the SYNs before the capture)", len(r.Connections))
	}
	var subjects []string
	for _, h := range r.Hints {
		if h.Kind == "resolved-not-contacted" && strings.Contains(h.Text, "nflog") {
			subjects = append(subjects, h.Subject)
		}
	}
	if diff := cmp.Diff([]string{"updates.vendor.test", "api.vendor.test"}, subjects); diff != "" {
		t.Errorf("-i any capture: hints (-want +got):\n%s", diff)
	}
}
