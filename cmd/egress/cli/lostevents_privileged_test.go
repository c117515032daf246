//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/testkit/testnet"
	"github.com/egress-dev/egress/report"
)

// TestPrivilegedRunLostEvents: kernel records that find the ring buffer
// full are counted, not silently dropped. With a one-page ring
// (EGRESS_RING_KIB=4) a burst of loopback connects loses records: the
// report counts them in stats.events_lost, its headline says INCOMPLETE,
// and enforce mode fails (exit 4) where audit mode does not. With the
// default ring the same command at a bounded rate loses nothing, and every
// connect it made is in the report.
func TestPrivilegedRunLostEvents(t *testing.T) {
	testnet.RequirePrivileged(t)
	bin := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress", "github.com/egress-dev/egress/internal/testkit/connload")
	// connects is what connload counted: its successful connects and its
	// failed ones; a connect cut by its deadline is neither.
	run := func(t *testing.T, env []string, flags []string, load ...string) (code int, r report.Report, connects, failed int) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "load")
		script := fmt.Sprintf("exec %s %s > %s", filepath.Join(bin, "connload"), strings.Join(load, " "), out)
		args := append(append([]string{"run", "--format", "json"}, flags...), "--", "sh", "-c", script)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "egress"), args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("egress run: %v", err)
		}
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("egress run (exit %d): no JSON report: %v\nstderr:\n%s", code, err, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("connload wrote nothing: %v\nstderr:\n%s", err, stderr.String())
		}
		if _, err := fmt.Sscanf(string(b), "connects %d failed %d", &connects, &failed); err != nil {
			t.Fatalf("connload printed %q", b)
		}
		return code, r, connects, failed
	}
	burst := []string{"-duration", "1s", "-workers", "8"}
	tiny := []string{"EGRESS_RING_KIB=4"}

	t.Run("enforce", func(t *testing.T) {
		code, r, connects, _ := run(t, tiny, nil, burst...)
		if r.Stats.EventsLost == 0 {
			t.Fatalf("%d connects through a 4 KiB ring lost no events: the test does not overflow it", connects)
		}
		if !strings.HasPrefix(r.Headline, "INCOMPLETE: ") {
			t.Errorf("headline %q, want it to start INCOMPLETE with %d events lost", r.Headline, r.Stats.EventsLost)
		}
		if code != ExitRunFindings {
			t.Errorf("exit %d with %d events lost in enforce mode, want %d", code, r.Stats.EventsLost, ExitRunFindings)
		}
	})
	t.Run("audit", func(t *testing.T) {
		code, r, _, _ := run(t, tiny, []string{"--mode", "audit"}, burst...)
		if r.Stats.EventsLost == 0 || !strings.HasPrefix(r.Headline, "INCOMPLETE: ") {
			t.Errorf("audit: %d events lost, headline %q: the loss must still be shown", r.Stats.EventsLost, r.Headline)
		}
		if code != ExitOK {
			t.Errorf("audit mode exit %d, want 0: it reports without failing", code)
		}
	})
	t.Run("watch", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "load")
		load := exec.Command("sh", "-c", fmt.Sprintf("exec %s -delay 1s -duration 1s -workers 8 > %s", filepath.Join(bin, "connload"), out))
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		defer load.Wait()
		defer load.Process.Kill()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "egress"), "watch", "--pid", fmt.Sprint(load.Process.Pid), "--duration", "3s", "--format", "json")
		cmd.Env = append(os.Environ(), tiny...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		var ee *exec.ExitError
		if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
			t.Fatalf("egress watch: %v\n%s", err, stderr.String())
		}
		var r report.Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("egress watch: no JSON report: %v\n%s", err, stderr.String())
		}
		if r.Stats.EventsLost == 0 || !strings.HasPrefix(r.Headline, "INCOMPLETE: ") {
			t.Errorf("watch through a 4 KiB ring: %d events lost, headline %q: the loss must be counted and shown", r.Stats.EventsLost, r.Headline)
		}
	})
	t.Run("default_ring", func(t *testing.T) {
		const workers = 2
		code, r, connects, failed := run(t, nil, nil, "-duration", "1s", "-workers", fmt.Sprint(workers), "-rate", "2000")
		if r.Stats.EventsLost != 0 || strings.HasPrefix(r.Headline, "INCOMPLETE") {
			t.Errorf("2,000 connects/s through the default ring: %d events lost, headline %q", r.Stats.EventsLost, r.Headline)
		}
		if code != ExitOK {
			t.Errorf("exit %d, want 0", code)
		}
		seen := 0
		for _, c := range r.Connections {
			if c.DstIP.IsLoopback() {
				seen += c.Count
			}
		}
		// Each worker may have had one connect in flight at its deadline.
		if connects == 0 || seen < connects || seen > connects+failed+workers {
			t.Errorf("connload made %d connects (%d failed, %d workers), the report holds %d loopback calls", connects, failed, workers, seen)
		}
	})
}
