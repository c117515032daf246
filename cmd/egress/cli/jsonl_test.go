package cli

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkJSONL checks a --format jsonl output against the --format json
// report of the same input: every line parses, the calls are the report's
// calls (in the order they settled), and the summary is the rest of it.
func checkJSONL(t *testing.T, jsonl, full string) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal([]byte(full), &want); err != nil {
		t.Fatalf("json report: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(jsonl, "\n"), "\n")
	got := map[string][]any{"connection": {}, "lookup": {}}
	var summary map[string]any
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d does not parse: %v\n%s", i+1, err, line)
		}
		typ, _ := m["type"].(string)
		delete(m, "type")
		switch {
		case typ == "summary" && i == len(lines)-1:
			summary = m
		case typ == "connection" || typ == "lookup":
			if summary != nil {
				t.Errorf("line %d: a %s after the summary", i+1, typ)
			}
			got[typ] = append(got[typ], m)
		default:
			t.Errorf("line %d: type %q", i+1, typ)
		}
	}
	if summary == nil {
		t.Fatal("no summary line at the end")
	}
	for typ, key := range map[string]string{"connection": "connections", "lookup": "lookups"} {
		w, _ := want[key].([]any)
		if w == nil {
			w = []any{}
		}
		if diff := cmp.Diff(sortedJSON(w), sortedJSON(got[typ])); diff != "" {
			t.Errorf("streamed %ss differ from the report's (-report +stream):\n%s", typ, diff)
		}
		if n, _ := summary[key].(float64); int(n) != len(w) {
			t.Errorf("summary says %v %s, the report has %d", summary[key], key, len(w))
		}
		delete(want, key)
		delete(summary, key)
	}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("summary differs from the report (-report +summary):\n%s", diff)
	}
}

// sortedJSON orders calls by their encoding: the stream is in the order
// calls settled, the report by start time.
func sortedJSON(v []any) []string {
	out := make([]string, len(v))
	for i, x := range v {
		b, _ := json.Marshal(x)
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

// TestJSONL: replay streams each settled call for every recorded capture,
// with rules and the catalog applied as in the full report.
func TestJSONL(t *testing.T) {
	policy := filepath.Join(rulesDir, "allow-vendor.yaml")
	for _, f := range captures(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, extra := range [][]string{nil, {"--rules", policy}} {
				args := append([]string{"replay", f}, extra...)
				code, full, stderr := runMain(t, nil, append(args, "--format", "json")...)
				if code != ExitOK {
					t.Fatalf("json: exit %d: %s", code, stderr)
				}
				code, lines, stderr := runMain(t, nil, append(args, "--format", "jsonl")...)
				if code != ExitOK {
					t.Fatalf("jsonl: exit %d: %s", code, stderr)
				}
				checkJSONL(t, lines, full)
			}
		})
	}
}
