package cli

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/egress-dev/egress/internal/testkit/gencap"
	"github.com/egress-dev/egress/report"
)

const ciGoldenDir = "testdata/ci"

// checkGolden compares got with testdata/ci/name (-update rewrites it).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join(ciGoldenDir, name)
	// Paths in the output depend on where the test runs from.
	got = strings.ReplaceAll(got, "../../../testdata/", "testdata/")
	if *update {
		if err := os.MkdirAll(ciGoldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/egress/cli -run %s -update creates it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from golden (-want +got):\n%s", golden, diff)
	}
}

// TestCIFormats replays the story's capture under a policy that allows
// nothing (both vendor calls fail the check) and one that allows the
// vendor (the check passes), in every CI format, with the site catalog
// that labels the vendor's call; on GitHub Actions it also writes
// annotations and the step summary.
func TestCIFormats(t *testing.T) {
	capture := filepath.Join(capturesDir, "story-drop-path.pcap")
	for _, tt := range []struct {
		policy   string
		wantCode int
	}{
		{"allow-nothing", ExitFindings},
		{"allow-vendor", ExitOK},
	} {
		for _, format := range []string{"junit", "markdown"} {
			t.Run(tt.policy+"/"+format, func(t *testing.T) {
				summary := filepath.Join(t.TempDir(), "summary.md")
				t.Setenv("GITHUB_ACTIONS", "true")
				t.Setenv("GITHUB_STEP_SUMMARY", summary)
				code, out, stderr := runMain(t, nil, "replay", capture, "--format", format,
					"--rules", filepath.Join(rulesDir, tt.policy+".yaml"), "--fail-on", "unexpected",
					"--catalog", filepath.Join(rulesDir, "vendor-catalog.yaml"))
				if code != tt.wantCode {
					t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
				}
				out = strings.ReplaceAll(out, capture, "testdata/captures/story-drop-path.pcap")
				stderr = strings.ReplaceAll(stderr, capture, "testdata/captures/story-drop-path.pcap")
				ext := ".xml"
				if format == "markdown" {
					ext = ".md"
				}
				checkGolden(t, "story-drop-path."+tt.policy+ext, out)
				checkGolden(t, "story-drop-path."+tt.policy+"."+format+".stderr", stderr)
				sum, err := os.ReadFile(summary)
				if err != nil {
					t.Fatalf("step summary: %v", err)
				}
				checkGolden(t, "story-drop-path."+tt.policy+".summary.md",
					strings.ReplaceAll(string(sum), capture, "testdata/captures/story-drop-path.pcap"))
				// The site catalog labels the vendor's calls.
				if label := "Web shop version check at admin login"; !strings.Contains(out, label) {
					t.Errorf("the report lacks the catalog label %q", label)
				}
				if format == "junit" {
					junitConsumer(t, out)
					var doc struct {
						Tests    int `xml:"tests,attr"`
						Failures int `xml:"failures,attr"`
					}
					if err := xml.Unmarshal([]byte(out), &doc); err != nil {
						t.Fatalf("junit output does not parse: %v", err)
					}
					wantFail := 0
					if tt.wantCode == ExitFindings {
						wantFail = 2
					}
					if doc.Tests != 2 || doc.Failures != wantFail {
						t.Errorf("junit: %d tests, %d failures; want 2, %d", doc.Tests, doc.Failures, wantFail)
					}
				}
			})
		}
	}
}

// TestCINotGitHub: outside GitHub Actions there are no annotations and no
// summary, whatever the format.
func TestCINotGitHub(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "")
	t.Setenv("GITHUB_STEP_SUMMARY", "")
	capture := filepath.Join(capturesDir, "story-drop-path.pcap")
	code, _, stderr := runMain(t, nil, "replay", capture, "--format", "junit", "--rules", filepath.Join(rulesDir, "allow-nothing.yaml"))
	if code != ExitOK || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if code, _, stderr := runMain(t, nil, "replay", capture, "--format", "pdf"); code != ExitUsage || !strings.Contains(stderr, "junit") {
		t.Errorf("--format pdf: exit %d, stderr %q; want %d naming the formats", code, stderr, ExitUsage)
	}
}

// TestActionYAML: the composite action parses, uses only the inputs it
// declares, and passes each egress flag it builds to a real egress run flag.
func TestActionYAML(t *testing.T) {
	data, err := os.ReadFile("../../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Inputs map[string]any `yaml:"inputs"`
		Runs   struct {
			Using string `yaml:"using"`
			Steps []struct {
				Run string            `yaml:"run"`
				Env map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal(data, &action); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if action.Runs.Using != "composite" || len(action.Runs.Steps) == 0 {
		t.Fatalf("action.yml: runs.using %q with %d steps, want a composite action", action.Runs.Using, len(action.Runs.Steps))
	}
	for _, m := range regexp.MustCompile(`inputs\.([a-z_]+)`).FindAllStringSubmatch(string(data), -1) {
		if _, ok := action.Inputs[m[1]]; !ok {
			t.Errorf("action.yml uses undeclared input %q", m[1])
		}
	}
	run := newRunCmd(&env{})
	for _, step := range action.Runs.Steps {
		for _, m := range regexp.MustCompile(`(?:^|[ (])--([a-z-]+)`).FindAllStringSubmatch(step.Run, -1) {
			if slices.Contains([]string{"preserve-env"}, m[1]) {
				continue // sudo's
			}
			if run.Flags().Lookup(m[1]) == nil {
				t.Errorf("action.yml passes --%s, which egress run does not have", m[1])
			}
		}
	}
}

// TestCIRecorded: on recorded captures, in every format, the failures
// shown are exactly the destinations behind the exit code: --fail-on
// timeout on the story (its JUnit once said failures="0" while egress
// exited 1), failed lookups as cases of their own, and a clean check.
func TestCIRecorded(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "true")
	vendor := filepath.Join(rulesDir, "allow-vendor.yaml")
	for _, tt := range []struct {
		name, capture string
		flags         []string
		code          int
		failing       []string
	}{
		{"story.fail-on-timeout", "story-drop-path", []string{"--fail-on", "timeout"}, ExitFindings,
			[]string{"api.vendor.test:443/tcp", "updates.vendor.test:80/tcp"}},
		{"nxdomain.fail-on-nxdomain", "nxdomain", []string{"--fail-on", "nxdomain"}, ExitFindings,
			[]string{"api.vendor.test/dns", "updates.vendor.test/dns"}},
		{"dns-silent.fail-on-failed", "dns-silent", []string{"--fail-on", "failed"}, ExitFindings,
			[]string{"api.vendor.test/dns", "updates.vendor.test/dns"}},
		{"established.clean", "established", []string{"--rules", vendor, "--fail-on", "unexpected"}, ExitOK, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			capture := filepath.Join(capturesDir, tt.capture+".pcap")
			shown := map[string][]string{}
			for _, format := range []string{"junit", "markdown", "json"} {
				t.Setenv("GITHUB_STEP_SUMMARY", filepath.Join(t.TempDir(), "summary.md"))
				code, out, stderr := runMain(t, nil, append([]string{"replay", capture, "--format", format}, tt.flags...)...)
				if code != tt.code {
					t.Errorf("%s: exit %d, want %d\n%s", format, code, tt.code, stderr)
				}
				out = strings.ReplaceAll(out, capture, "testdata/captures/"+tt.capture+".pcap")
				switch format {
				case "junit":
					_, shown["junit"] = parseJUnitCases(t, out)
					shown["junitparser"] = junitConsumer(t, out)
					checkGolden(t, tt.name+".xml", out)
					var errs []string
					for _, l := range strings.Split(stderr, "\n") {
						if m := regexp.MustCompile(`^::error title=[^:]*::(?:unexpected )?(?:call to|lookup of) (\S+?/(?:tcp|udp|dns))`).FindStringSubmatch(l); m != nil {
							errs = append(errs, m[1])
						}
					}
					slices.Sort(errs)
					shown["annotations"] = errs
				case "markdown":
					var rows []string
					for _, m := range regexp.MustCompile("(?m)^\\| ❌ \\| `([^`]+)`").FindAllStringSubmatch(out, -1) {
						rows = append(rows, m[1])
					}
					slices.Sort(rows)
					shown["markdown"] = rows
					checkGolden(t, tt.name+".md", out)
				case "json":
					r := decodeReport(t, out)
					var fails []string
					for _, d := range report.Destinations(r) {
						if d.Fails != "" {
							fails = append(fails, d.ID())
						}
					}
					slices.Sort(fails)
					shown["json"] = fails
				}
			}
			for format, got := range shown {
				if strings.Join(got, " ") != strings.Join(tt.failing, " ") {
					t.Errorf("%s shows failing %q; the exit code's are %q", format, got, tt.failing)
				}
			}
		})
	}
}

// junitConsumer runs junitparser (Debian's python3-junitparser, which
// .ci/run installs) on a JUnit report and returns the failed cases it
// reads, sorted; see report/testdata/junit_check.py.
func junitConsumer(t *testing.T, junit string) []string {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import junitparser").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-junitparser is missing (.ci/run installs it): %v", err)
		}
		t.Skipf("python3-junitparser not installed (apt-get install python3-junitparser): %v", err)
	}
	cmd := exec.Command(python, "../../../report/testdata/junit_check.py")
	cmd.Stdin = strings.NewReader(junit)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("junitparser: %v\n%s", err, out)
	}
	var failed []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "FAIL" {
			failed = append(failed, f[1])
		}
	}
	slices.Sort(failed)
	return failed
}

// TestCIBusyCapture: a busy generated capture (many hosts, drops, refusals,
// failed lookups) judged by a policy that allows nothing: GitHub gets the
// ten worst annotations and one line for the rest, the step summary stays
// bounded and names the report, and JUnit, the JSON verdicts and the exit
// decision agree on every failing destination.
func TestCIBusyCapture(t *testing.T) {
	var pcap bytes.Buffer
	if _, err := gencap.Write(&pcap, gencap.Config{TargetPackets: 30000, Seed: 11, Flows: 64, Clients: 8, Names: 300}); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(t.TempDir(), "summary.md")
	t.Setenv("GITHUB_ACTIONS", "true")
	t.Setenv("GITHUB_STEP_SUMMARY", summary)
	args := []string{"replay", "-", "--rules", filepath.Join(rulesDir, "allow-nothing.yaml"), "--fail-on", "unexpected,timeout"}
	code, junit, stderr := runMain(t, pcap.Bytes(), append(args, "--format", "junit")...)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d\n%s", code, ExitFindings, stderr)
	}
	var commands, errs int
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "::") {
			commands++
		}
		if strings.HasPrefix(l, "::error ") {
			errs++
		}
	}
	if commands != 11 || errs != 11 || !strings.Contains(stderr, "more destinations::") {
		t.Errorf("%d workflow commands (%d errors), want the 10 worst and one line for the rest:\n%s", commands, errs, stderr)
	}
	sum, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(sum), "\n"); n > 50 || len(sum) > 12<<10 || !strings.Contains(string(sum), "more destination(s)") {
		t.Errorf("step summary: %d lines, %d bytes; want at most 50 lines, 12 KiB and a line for the rest:\n%s", n, len(sum), sum)
	}
	cases, failed := parseJUnitCases(t, junit)
	if len(cases) < 100 || len(failed) < 50 {
		t.Fatalf("%d cases, %d failed: not a busy capture", len(cases), len(failed))
	}
	if got := junitConsumer(t, junit); !slices.Equal(got, failed) {
		t.Errorf("junitparser reads %d failures, encoding/xml %d", len(got), len(failed))
	}
	if m := regexp.MustCompile(`egress: (\d+) destination\(s\) fail the check`).FindStringSubmatch(stderr); m == nil || m[1] != strconv.Itoa(len(failed)) {
		t.Errorf("stderr says %v failing, JUnit %d", m, len(failed))
	}
	_, js, _ := runMain(t, pcap.Bytes(), append(args, "--format", "json")...)
	var fails []string
	for _, d := range report.Destinations(decodeReport(t, js)) {
		if d.Fails != "" {
			fails = append(fails, d.ID())
		}
	}
	slices.Sort(fails)
	if !slices.Equal(fails, failed) {
		t.Errorf("the JSON verdicts fail %d destinations, JUnit %d", len(fails), len(failed))
	}
}
