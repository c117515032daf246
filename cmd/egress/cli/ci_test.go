package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
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
