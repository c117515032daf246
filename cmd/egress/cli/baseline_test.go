package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recordedReport replays testdata/captures/NAME.pcap and writes its JSON
// report into dir, as a job would keep it.
func recordedReport(t *testing.T, dir, name string, flags ...string) string {
	t.Helper()
	code, out, stderr := runMain(t, nil, append([]string{"replay", filepath.Join(capturesDir, name+".pcap"), "--format", "json"}, flags...)...)
	if code != ExitOK {
		t.Fatalf("replay %s: exit %d\n%s", name, code, stderr)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiffRecorded: egress diff on the reports of recorded captures. The
// same login whose vendor calls got through (established) and hung
// (story-drop-path) has the same destinations, changed; over IPv6 the
// addresses differ but the names match; a capture whose lookups failed
// has new destinations, and diff exits 1.
func TestDiffRecorded(t *testing.T) {
	dir := t.TempDir()
	reports := map[string]string{}
	for _, n := range []string{"established", "story-drop-path", "ipv6-drop", "nxdomain"} {
		reports[n] = recordedReport(t, dir, n)
	}
	for _, tt := range []struct {
		old, cur string
		code     int
	}{
		{"established", "story-drop-path", ExitOK},
		{"ipv6-drop", "story-drop-path", ExitOK},
		{"established", "nxdomain", ExitFindings},
		{"story-drop-path", "story-drop-path", ExitOK},
	} {
		for _, format := range []string{"text", "json"} {
			code, out, stderr := runMain(t, nil, "diff", reports[tt.old], reports[tt.cur], "--format", format)
			if code != tt.code || stderr != "" {
				t.Errorf("diff %s %s: exit %d, stderr %q; want %d and nothing", tt.old, tt.cur, code, stderr, tt.code)
			}
			ext := ".txt"
			if format == "json" {
				ext = ".json"
			}
			checkGolden(t, "diff."+tt.old+"."+tt.cur+ext, strings.ReplaceAll(out, dir+"/", ""))
		}
	}
	if code, _, stderr := runMain(t, nil, "diff", reports["established"], filepath.Join(capturesDir, "established.pcap")); code != ExitUsage || !strings.Contains(stderr, "not a JSON report") {
		t.Errorf("diff with a capture: exit %d, %q; want %d and a clear error", code, stderr, ExitUsage)
	}
}

// TestBaselineRecorded: --baseline counts the destinations of an earlier
// report as expected, so a check fails only on what is new; the JUnit
// failures, the exit code and the JSON verdicts agree.
func TestBaselineRecorded(t *testing.T) {
	dir := t.TempDir()
	established := recordedReport(t, dir, "established")
	nxdomain := recordedReport(t, dir, "nxdomain")
	story := filepath.Join(capturesDir, "story-drop-path.pcap")
	nothing := filepath.Join(rulesDir, "allow-nothing.yaml")
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		failing []string
	}{
		{"policy alone fails both", []string{"replay", story, "--rules", nothing, "--fail-on", "unexpected"}, ExitFindings,
			[]string{"api.vendor.test:443/tcp", "updates.vendor.test:80/tcp"}},
		{"baseline had both", []string{"replay", story, "--rules", nothing, "--baseline", established, "--fail-on", "unexpected"}, ExitOK, nil},
		{"baseline alone", []string{"replay", story, "--baseline", established, "--fail-on", "unexpected"}, ExitOK, nil},
		{"baseline lacks both", []string{"replay", story, "--baseline", nxdomain, "--fail-on", "unexpected"}, ExitFindings,
			[]string{"api.vendor.test:443/tcp", "updates.vendor.test:80/tcp"}},
		{"baseline does not hide --fail-on", []string{"replay", story, "--baseline", established, "--fail-on", "unexpected,timeout"}, ExitFindings,
			[]string{"api.vendor.test:443/tcp", "updates.vendor.test:80/tcp"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runMain(t, nil, append(tt.args, "--format", "junit")...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, stderr)
			}
			_, failed := parseJUnitCases(t, out)
			if strings.Join(failed, " ") != strings.Join(tt.failing, " ") {
				t.Errorf("junit failures %q, want %q\n%s", failed, tt.failing, out)
			}
			_, js, _ := runMain(t, nil, append(tt.args, "--format", "json")...)
			r := decodeReport(t, js)
			var fails []string
			for _, c := range r.Connections {
				if c.Verdict.Failure() != "" {
					fails = append(fails, c.Host)
				}
				if strings.Contains(tt.name, "baseline had") && (c.Verdict == nil || c.Verdict.Rule != "baseline "+established) {
					t.Errorf("%s: verdict %+v, want the baseline as the rule", c.Host, c.Verdict)
				}
			}
			if len(fails) != len(tt.failing) || r.Check == nil || r.Check.Failed != len(tt.failing) {
				t.Errorf("json: failing calls %q, check %+v; want %d", fails, r.Check, len(tt.failing))
			}
		})
	}
	// A starter policy from the baseline and a new report allows both.
	code, out, _ := runMain(t, nil, "rules", "suggest", "--baseline", nxdomain, established)
	if code != ExitOK || !strings.Contains(out, `host: "api.vendor.test"`) || !strings.Contains(out, `host: "updates.vendor.test"`) {
		t.Errorf("suggest --baseline: exit %d\n%s", code, out)
	}
	checkGolden(t, "suggest.baseline-nxdomain.established.yaml", out)
}

// parseJUnitCases returns the case names and, sorted, the failed ones.
func parseJUnitCases(t *testing.T, s string) (cases, failed []string) {
	t.Helper()
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("junit does not parse: %v\n%s", err, s)
	}
	for _, su := range doc.Suites {
		for _, c := range su.Cases {
			cases = append(cases, c.Name)
			if c.Failure != nil {
				failed = append(failed, c.Name)
			}
		}
	}
	slices.Sort(failed)
	return cases, failed
}

// TestReportCmd: a JSON report written again as JUnit or Markdown is the
// same as the run's own output in that format: the verdicts are in the
// JSON.
func TestReportCmd(t *testing.T) {
	dir := t.TempDir()
	story := filepath.Join(capturesDir, "story-drop-path.pcap")
	args := []string{"replay", story, "--rules", filepath.Join(rulesDir, "allow-nothing.yaml"), "--fail-on", "unexpected,timeout"}
	_, js, _ := runMain(t, nil, append(args, "--format", "json")...)
	path := filepath.Join(dir, "run.json")
	if err := os.WriteFile(path, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"junit", "markdown", "json"} {
		_, want, _ := runMain(t, nil, append(args, "--format", format)...)
		code, got, stderr := runMain(t, nil, "report", path, "--format", format)
		if code != ExitOK || got != want {
			t.Errorf("report --format %s: exit %d %s\ngot:\n%s\nwant:\n%s", format, code, stderr, got, want)
		}
	}
}
