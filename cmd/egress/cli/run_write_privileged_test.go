//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPrivilegedRunWriteReplays: what egress run --write saw (kernel
// socket events, the DNS the proxy relayed, the calls --block refused)
// replays to the same report, as a watch file does, but for the hints only
// the live run can give (liveHints).
func TestPrivilegedRunWriteReplays(t *testing.T) {
	n := newRunNet(t)
	pcap := filepath.Join(t.TempDir(), "run.pcapng")
	res := n.egressRun(t, nil, []string{"--rules", n.policy, "--block", "--format", "json", "--report", filepath.Join(filepath.Dir(pcap), "run.json"), "--write", pcap},
		allowedURL, trackerURL, trackerIP)
	if res.code != ExitUnexpected {
		t.Fatalf("egress run exit %d, want %d\n%s", res.code, ExitUnexpected, res.stderr)
	}
	liveJSON, err := os.ReadFile(filepath.Join(filepath.Dir(pcap), "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rout, rerr bytes.Buffer
	// --fail-on unexpected judges as run's enforce mode does.
	if code := Main(t.Context(), []string{"replay", pcap, "--rules", n.policy, "--fail-on", "unexpected", "--format", "json"}, nil, &rout, &rerr); code != ExitFindings {
		t.Fatalf("replay of the written file: exit %d, want %d: %s", code, ExitFindings, rerr.String())
	}
	var live, replayed map[string]any
	if err := json.Unmarshal(liveJSON, &live); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rout.Bytes(), &replayed); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]any{live, replayed} {
		delete(m, "source")
		delete(m, "backend")
	}
	if diff := cmp.Diff(live, replayed); diff != "" {
		t.Errorf("replay of the run's file differs from the live report (-live +replay):\n%s", diff)
	}
	if conns, _ := live["connections"].([]any); len(conns) < 2 {
		t.Errorf("the live report has %d connections, want the allowed and the refused ones:\n%s", len(conns), liveJSON)
	}
}
