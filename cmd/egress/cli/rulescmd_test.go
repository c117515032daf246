package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/rules"
)

const rulesDir = "../../../testdata/rules"

func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("allow:\n  - host: \"*.shopvendor.example\"\n    ports: [80, 443]\n  - cidr: 198.51.100.0/33\n  - hots: api.example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		file       string
		wantCode   int
		wantOut    string
		wantStderr []string // lines that must appear, in order
	}{
		{"valid", filepath.Join(rulesDir, "allow-vendor.yaml"), ExitOK,
			filepath.Join(rulesDir, "allow-vendor.yaml") + ": valid: 1 allow, 0 deny entries; loopback allowed, resolvers allowed\n", nil},
		{"allow nothing", filepath.Join(rulesDir, "allow-nothing.yaml"), ExitOK,
			filepath.Join(rulesDir, "allow-nothing.yaml") + ": valid: 0 allow, 0 deny entries; loopback allowed, resolvers allowed\n", nil},
		{"every mistake with its line", bad, ExitUsage, "", []string{bad + ":4: cidr", bad + ":5: unknown entry key \"hots\" (did you mean host?)", "3 mistake(s)"}},
		{"missing file", filepath.Join(dir, "none.yaml"), ExitUsage, "", []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runMain(t, nil, "rules", "check", tt.file)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.wantCode, stderr)
			}
			if diff := cmp.Diff(tt.wantOut, out); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			rest := stderr
			for _, w := range tt.wantStderr {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stderr lacks %q (in order):\n%s", w, stderr)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestRulesSuggest writes a policy from a capture and from the JSON report
// of the same capture: both must be the same, parse, and allow every call.
func TestRulesSuggest(t *testing.T) {
	capture := filepath.Join(capturesDir, "story-drop-path.pcap")
	code, fromCapture, stderr := runMain(t, nil, "rules", "suggest", capture)
	if code != ExitOK {
		t.Fatalf("suggest from capture: exit %d: %s", code, stderr)
	}
	code, js, stderr := runMain(t, nil, "replay", capture, "--format", "json")
	if code != ExitOK {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	code, fromJSON, stderr := runMain(t, []byte(js), "rules", "suggest", "-")
	if code != ExitOK {
		t.Fatalf("suggest from JSON on stdin: exit %d: %s", code, stderr)
	}
	if diff := cmp.Diff(fromCapture, fromJSON); diff != "" {
		t.Errorf("suggest from capture vs from its JSON report (-capture +json):\n%s", diff)
	}
	for _, host := range []string{`host: "updates.vendor.test"`, `host: "api.vendor.test"`} {
		if !strings.Contains(fromCapture, host) {
			t.Errorf("suggested policy lacks %s:\n%s", host, fromCapture)
		}
	}
	pol := filepath.Join(t.TempDir(), "suggested.yaml")
	if err := os.WriteFile(pol, []byte(fromCapture), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Load(pol); err != nil {
		t.Fatalf("suggested policy does not parse: %v\n%s", err, fromCapture)
	}
	// Replayed with its own suggestion, nothing in the capture is unexpected.
	code, _, stderr = runMain(t, nil, "replay", capture, "--rules", pol, "--fail-on", "unexpected")
	if code != ExitOK {
		t.Errorf("replay with the suggested policy: exit %d, want 0: %s", code, stderr)
	}
	if code, _, _ := runMain(t, nil, "rules", "suggest", filepath.Join(t.TempDir(), "none")); code != ExitUsage {
		t.Errorf("suggest from a missing file: exit %d, want %d", code, ExitUsage)
	}
}
