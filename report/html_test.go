package report

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
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
		Window:   Window{Start: t0, End: t0.Add(3 * time.Second), DurationMS: 3000},
		Connections: []Connection{{
			PID: &pid, Comm: &comm, Host: "<img src=x onerror=alert(1)>.example", DstIP: netip.MustParseAddr("203.0.113.9"), DstPort: 443,
			Start: t0, End: t0.Add(3 * time.Second), Outcome: Timeout, Attempts: 3, SynTimesMS: []float64{0, 1000, 2000},
			BlockedMS: 3000, Inferred: true, Count: 1,
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

// TestHTMLBusy: 20,000 calls of several hosts give a bounded page: failures
// drawn first (the longest wait first), inferred give-ups hatched, a
// legend, the failures grouped by destination, the local addresses
// collapsed, the table bounded.
func TestHTMLBusy(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := &Report{Headline: "many", Source: "busy.pcap", HostsSeen: 40,
		Window: Window{Start: t0, End: t0.Add(time.Hour), DurationMS: 3600000},
		Local:  Local{Basis: "flag", Addresses: []string{"198.18.0.0/15"}}}
	for i := 0; i < 20000; i++ {
		c := Connection{Host: fmt.Sprintf("ok%d.example", i%500), DstIP: netip.MustParseAddr("198.51.100.1"), DstPort: 443, SrcIP: netip.AddrFrom4([4]byte{198, 18, 0, byte(i % 40)}),
			Start: t0.Add(time.Duration(i) * 100 * time.Millisecond), Outcome: Established, Attempts: 1, Count: 1}
		switch i % 100 {
		case 7:
			c.Host, c.Outcome, c.BlockedMS, c.Inferred = fmt.Sprintf("down%d.example", i%7), Timeout, float64(i%9000), true
		case 8:
			c.Host, c.Outcome, c.BlockedMS = "closed.example", Refused, 1
		}
		c.End = c.Start.Add(time.Duration(c.BlockedMS) * time.Millisecond)
		r.Connections = append(r.Connections, c)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "<rect "); n != busyTimelineRows {
		t.Errorf("%d bars drawn, want %d", n, busyTimelineRows)
	}
	if !strings.Contains(out, `<rect class="hang inf"`) || !strings.Contains(out, `class="legend"`) {
		t.Error("no hatched inferred give-up or no legend")
	}
	if i, j := strings.Index(out, "<rect "), strings.Index(out, `<rect class="ok"`); j >= 0 && j < i {
		t.Error("a success is drawn before the failures")
	}
	if !strings.Contains(out, "Failed calls by destination") || len(regexp.MustCompile(`<td>down\d\.example \(198\.51\.100\.1:443\)</td>`).FindAllString(out, -1)) != 7 || !strings.Contains(out, "closed.example (198.51.100.1:443)") {
		t.Error("the failures are not grouped by destination")
	}
	if !strings.Contains(out, "<details><summary>local addresses (flag): 1</summary>") {
		t.Error("the local addresses are not collapsed")
	}
	if rows := strings.Count(out, "<tr>"); rows > maxTableRows+2*maxGroupRows+20 {
		t.Errorf("%d table rows: a wall", rows)
	}
	if len(out) > 1<<20 {
		t.Errorf("page of %d bytes", len(out))
	}
}
