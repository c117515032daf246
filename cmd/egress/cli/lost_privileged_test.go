//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egress-dev/egress/report"
)

// The lost-time test apps write how long they really waited for the
// dropped call to the file named by argv[1], in ms.
const (
	// blockingApp is PHP-style: it works, calls with a blocking connect
	// (2 s timeout) and waits it out, then works again.
	blockingApp = `
import socket, sys, time
def work(s):
    t = time.monotonic()
    while time.monotonic() - t < s:
        pass
work(0.3)
t0 = time.monotonic()
try:
    socket.create_connection(("` + sharedAddr + `", 443), timeout=2)
except OSError:
    pass
w = time.monotonic() - t0
work(0.3)
open(sys.argv[1], "w").write(str(int(w * 1000)))
`
	// backgroundApp is Node-style: the call (3 s timeout) runs on a thread
	// while the main thread computes for 2 s, then waits for it at the end.
	backgroundApp = `
import socket, sys, threading, time
def call():
    try:
        socket.create_connection(("` + sharedAddr + `", 443), timeout=3)
    except OSError:
        pass
th = threading.Thread(target=call)
th.start()
t = time.monotonic()
while time.monotonic() - t < 2.0:
    pass
t0 = time.monotonic()
th.join()
w = time.monotonic() - t0
open(sys.argv[1], "w").write(str(int(w * 1000)))
`
)

// TestPrivilegedLostTime: the time a failed call cost, in watch and run,
// is the wait the app really had, within 10%: all of it for a blocking
// client, only the wait at the end for one that worked meanwhile.
func TestPrivilegedLostTime(t *testing.T) {
	n := newLossNet(t)
	apps := []struct {
		name, src string
		blocked   time.Duration // the call's own wait
	}{
		{"blocking", blockingApp, 2 * time.Second},
		{"background", backgroundApp, 3 * time.Second},
	}
	for _, app := range apps {
		script := filepath.Join(n.dir, app.name+".py")
		if err := os.WriteFile(script, []byte(app.src), 0o644); err != nil {
			t.Fatal(err)
		}
		check := func(t *testing.T, r *report.Report, waitFile string) {
			t.Helper()
			b, err := os.ReadFile(waitFile)
			if err != nil {
				t.Fatalf("the app did not say how long it waited: %v", err)
			}
			waitMS, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			wait := time.Duration(waitMS) * time.Millisecond
			t.Logf("app waited %v; window lost %.0f ms (%s), blocked %.0f ms; %s", wait, r.Window.LostMS, r.Window.LostBasis, r.Window.BlockedMS, r.Headline)
			if r.Window.LostBasis != report.LostScheduler {
				t.Errorf("lost_basis %q, want scheduler", r.Window.LostBasis)
			}
			within(t, "window lost", r.Window.LostMS, wait)
			var calls int
			for _, c := range r.Connections {
				if c.DstIP.String() != sharedAddr {
					continue
				}
				calls++
				within(t, "the call's lost", c.LostMS, wait)
				within(t, "the call's blocked", c.BlockedMS, app.blocked)
			}
			if calls != 1 {
				t.Errorf("%d calls to %s, want 1", calls, sharedAddr)
			}
			if !strings.Contains(r.Headline, "window lost") {
				t.Errorf("headline %q: want the lost wording", r.Headline)
			}
		}
		t.Run(app.name+"/run", func(t *testing.T) {
			waitFile := filepath.Join(t.TempDir(), "wait")
			r, _, _ := n.run(t, nil, "python3", script, waitFile)
			check(t, r, waitFile)
		})
		t.Run(app.name+"/watch", func(t *testing.T) {
			waitFile := filepath.Join(t.TempDir(), "wait")
			os.Remove(filepath.Join(n.dir, "go"))
			os.Remove(filepath.Join(n.dir, "done"))
			pid, trigger := n.watched(t, "python3 "+script+" "+waitFile)
			check(t, n.watch(t, pid, trigger, ""), waitFile)
		})
	}
}
