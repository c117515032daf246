package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestHTMLEscapesAndDraws(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pid, comm := 7, "<b>php</b>"
	r := &Report{
		Headline: "the 3.0 s window was blocked 3.0 s (100%) by <script>alert(1)</script>",
		Source:   "x.pcap",
		Window:   Window{Start: t0, End: t0.Add(3 * time.Second), Duration: Duration(3 * time.Second)},
		Connections: []Connection{{
			PID: &pid, Comm: &comm, Host: "<img src=x onerror=alert(1)>.example", DstIP: netip.MustParseAddr("203.0.113.9"), DstPort: 443,
			Start: t0, End: t0.Add(3 * time.Second), Outcome: Timeout, Attempts: 3, SynTimes: []Duration{0, Duration(time.Second), Duration(2 * time.Second)},
			Blocked: Duration(3 * time.Second), Inferred: true, Count: 1,
		}},
		Lookups: []Lookup{{Name: "ok.example", QType: "A", Server: netip.MustParseAddrPort("192.0.2.53:53"), Start: t0, End: t0.Add(time.Millisecond), Outcome: Answered, Count: 1}},
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"<script>", "<img", "<b>php"} {
		if strings.Contains(out, bad) {
			t.Errorf("html carries %q unescaped", bad)
		}
	}
	if n := strings.Count(out, "<rect "); n != 2 {
		t.Errorf("%d bars drawn, want 2 (one per call)", n)
	}
	if n := strings.Count(out, `stroke="#000"`); n != 3 {
		t.Errorf("%d SYN ticks drawn, want 3", n)
	}
	if !strings.Contains(out, `class="hang"`) || !strings.Contains(out, "~3.00 s") {
		t.Errorf("the timeout is not drawn as a hang with its inferred blocked time:\n%s", out)
	}
}
