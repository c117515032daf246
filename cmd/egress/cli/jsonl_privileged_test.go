//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// TestPrivilegedWatchJSONL: watch streams the calls of the watched process
// as they settle, and they are the calls of the report its --write file
// replays to.
func TestPrivilegedWatchJSONL(t *testing.T) {
	testnet.RequirePrivileged(t, "curl", "sh")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/", ln.Addr())
	app := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("sleep 1; for i in 1 2 3; do curl -s -o /dev/null %s; done; sleep 30", url))
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Process.Kill(); app.Wait() })
	pcap := filepath.Join(t.TempDir(), "watch.pcapng")
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"watch", "--pid", strconv.Itoa(app.Process.Pid), "--duration", "3s", "--format", "jsonl", "--write", pcap}, nil, &out, &errb)
	if code != ExitOK {
		t.Fatalf("watch exit %d: %s", code, errb.String())
	}
	code, full, stderr := runMain(t, nil, "replay", pcap, "--format", "json")
	if code != ExitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	// The source and backend differ between live and replay.
	checkJSONL(t, stripSource(t, out.String(), true), stripSource(t, full, false))
	if n := bytes.Count(out.Bytes(), []byte(`"type":"connection"`)); n != 3 {
		t.Errorf("%d connections streamed, want curl's 3:\n%s", n, out.String())
	}
}

// TestPrivilegedRunJSONL: run streams the calls of its command, including
// the ones --block refused, and they equal the calls of its JSON report.
func TestPrivilegedRunJSONL(t *testing.T) {
	n := newRunNet(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "run.pcapng")
	res := n.egressRun(t, nil, []string{"--rules", n.policy, "--block", "--format", "jsonl", "--write", pcap}, allowedURL, trackerURL, trackerIP)
	if res.code != ExitUnexpected {
		t.Fatalf("egress run exit %d, want %d\n%s", res.code, ExitUnexpected, res.stderr)
	}
	// --fail-on unexpected judges as run's enforce mode does.
	code, full, stderr := runMain(t, nil, "replay", pcap, "--rules", n.policy, "--fail-on", "unexpected", "--format", "json")
	if code != ExitFindings {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	checkJSONL(t, stripSource(t, res.stdout, true), stripSource(t, full, false))
	if !bytes.Contains([]byte(res.stdout), []byte(`"end_basis":"blocked: egress run --block refused connect`)) {
		t.Errorf("no refused call in the stream:\n%s", res.stdout)
	}
}

// stripSource blanks source and backend in a report or in a stream's
// summary line, which differ between a live run and its replay.
func stripSource(t *testing.T, s string, lines bool) string {
	t.Helper()
	var out []byte
	rest := []byte(s)
	for len(rest) > 0 {
		line := rest
		if lines {
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i+1], rest[i+1:]
			} else {
				rest = nil
			}
		} else {
			rest = nil
		}
		if !lines || bytes.Contains(line, []byte(`"type":"summary"`)) {
			line = blank(t, line)
		}
		out = append(out, line...)
	}
	return string(out)
}

func blank(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	m["source"], m["backend"] = "", ""
	nb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(nb, '\n')
}
