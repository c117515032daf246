package analyze_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/gencap"
	"github.com/egress-dev/egress/report"
)

// busy is a long capture of many hosts, small enough to generate at test
// time but past every record and fold bound once they are lowered
// (busyBounds): 3,000 client hosts over about 3 simulated minutes at about
// 900 packets/s, inbound sessions and SYN scans besides, 5% of outbound
// attempts dropped, 3% refused, 2% rejected.
var busy = gencap.Config{
	TargetPackets:    150_000,
	Seed:             3,
	Flows:            200,
	Clients:          3000,
	Names:            8192,
	MeanPacketSize:   150,
	PacketsPerSecond: 1000,
	DropShare:        0.05,
	RefuseShare:      0.03,
	RejectShare:      0.02,
	InboundShare:     0.15,
	ScanShare:        0.6,
	Windows: []gencap.Window{
		{From: 30 * time.Second, To: 60 * time.Second},
		{From: 100 * time.Second, To: 101 * time.Second},
	},
}

var busyBounds = analyze.Config{MaxRecords: 300, MaxFoldKeys: 600}

var busyLocal = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8:18::/48")}

func generateBusy(t *testing.T) ([]byte, gencap.Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := gencap.Write(&buf, busy)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(st.EndNanos - st.StartNanos); d < 150*time.Second {
		t.Fatalf("capture spans %v, want a long one", d)
	}
	return buf.Bytes(), st
}

func analyzeBytes(t *testing.T, data []byte, cfg analyze.Config) *report.Report {
	t.Helper()
	rd, err := pcapfile.NewReader("busy", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	an := analyze.New(cfg)
	if err := rd.Run(context.Background(), an); err != nil {
		t.Fatal(err)
	}
	if err := an.WindowError(); err != nil {
		t.Fatal(err)
	}
	return an.Finish()
}

// totals sums count by outcome, folding timeout and pending together (the
// generator cannot know where an analyzer bounded by the capture stops).
func totals(r *report.Report) (conns, lookups map[string]uint64) {
	conns, lookups = map[string]uint64{}, map[string]uint64{}
	norm := func(o report.Outcome) string {
		if o == report.Pending {
			return report.Timeout.String()
		}
		return o.String()
	}
	for _, c := range r.Connections {
		conns[norm(c.Outcome)] += uint64(c.Count)
	}
	for _, l := range r.Lookups {
		lookups[norm(l.Outcome)] += uint64(l.Count)
	}
	return conns, lookups
}

func wholeTruth(st gencap.Stats) (conns, lookups map[string]uint64) {
	conns = map[string]uint64{"established": st.TCP.Established, "refused": st.TCP.Refused,
		"rejected": st.TCP.Rejected, "timeout": st.TCP.Timeout}
	lookups = map[string]uint64{"answered": st.DNS.NoError, "nodata": st.DNS.NoData,
		"nxdomain": st.DNS.NXDomain, "servfail": st.DNS.ServFail, "timeout": st.DNS.Timeout}
	for _, m := range []map[string]uint64{conns, lookups} {
		for k, v := range m {
			if v == 0 {
				delete(m, k)
			}
		}
	}
	return conns, lookups
}

// TestBusyCaptureTruth: on a long capture of 2,000 hosts past every bound,
// outcome totals (sum of count by outcome) equal the generator's truth, for
// the whole capture and for windows; inbound attempts are counted, never
// listed; no failure is in a catch-all while successes are listed one by
// one; the same input gives the same report.
func TestBusyCaptureTruth(t *testing.T) {
	data, st := generateBusy(t)
	cfg := busyBounds
	cfg.Local = busyLocal
	r := analyzeBytes(t, data, cfg)

	wantC, wantL := wholeTruth(st)
	gotC, gotL := totals(r)
	if diff := cmp.Diff(wantC, gotC); diff != "" {
		t.Errorf("connections by outcome (-truth +report):\n%s", diff)
	}
	if diff := cmp.Diff(wantL, gotL); diff != "" {
		t.Errorf("lookups by outcome (-truth +report):\n%s", diff)
	}
	if r.Stats.InboundAttempts != st.Inbound.Attempts {
		t.Errorf("inbound_attempts %d, truth %d", r.Stats.InboundAttempts, st.Inbound.Attempts)
	}
	if r.Stats.RecordsFolded == 0 {
		t.Fatalf("nothing folded: the capture does not pass the bounds (%+v)", r.Stats)
	}
	checkCatchAlls(t, r)
	checkDurations(t, r)
	if r.HostsSeen < 1000 || len(r.Hosts) == 0 || !strings.Contains(r.Headline, "most time lost: ") {
		t.Errorf("hosts_seen %d, headline %q: want the per-host headline", r.HostsSeen, r.Headline)
	}
	t.Logf("%d connections (%d records), %d lookups (%d records), %d inbound, folded %d, in catch-alls %d",
		st.TCP.Attempts, len(r.Connections), st.DNS.Lookups, len(r.Lookups), st.Inbound.Attempts, r.Stats.RecordsFolded, r.Stats.RecordsDropped)

	var again bytes.Buffer
	var first bytes.Buffer
	if err := report.WriteJSON(&first, r); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteJSON(&again, analyzeBytes(t, data, cfg)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Error("the same capture gave two different reports")
	}

	for i, w := range st.Windows {
		t.Run(fmt.Sprintf("window%d", i), func(t *testing.T) {
			cfg := busyBounds
			cfg.Local = busyLocal
			cfg.From, cfg.To = w.FromNanos, w.ToNanos
			r := analyzeBytes(t, data, cfg)
			gotC, gotL := totals(r)
			if diff := cmp.Diff(nonZero(w.Connections), gotC); diff != "" {
				t.Errorf("connections by outcome in the window (-truth +report):\n%s", diff)
			}
			if diff := cmp.Diff(nonZero(w.Lookups), gotL); diff != "" {
				t.Errorf("lookups by outcome in the window (-truth +report):\n%s", diff)
			}
			if r.Stats.InboundAttempts != w.Inbound {
				t.Errorf("inbound_attempts %d, truth %d", r.Stats.InboundAttempts, w.Inbound)
			}
			checkCatchAlls(t, r)
			checkDurations(t, r)
		})
	}
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// checkCatchAlls: a failed call is in a nameless catch-all only when no
// success is listed one by one, and no headline names a catch-all or ":0".
func checkCatchAlls(t *testing.T, r *report.Report) {
	t.Helper()
	successOwn, failCatchAll := 0, 0
	catchAlls := map[string]int{}
	for _, c := range r.Connections {
		if c.IsCatchAll() {
			catchAlls["connection "+c.Outcome.String()]++
		}
		switch {
		case c.IsCatchAll() && failedOutcome(c.Outcome):
			failCatchAll += c.Count
		case !failedOutcome(c.Outcome) && c.Count == 1:
			successOwn++
		}
	}
	for _, l := range r.Lookups {
		if l.IsCatchAll() {
			catchAlls["lookup "+l.Outcome.String()]++
		}
		switch {
		case l.IsCatchAll() && failedOutcome(l.Outcome):
			failCatchAll += l.Count
		case !failedOutcome(l.Outcome) && l.Count == 1:
			successOwn++
		}
	}
	for k, n := range catchAlls {
		if n > 1 {
			t.Errorf("%d catch-alls for %s, want one", n, k)
		}
	}
	if failCatchAll > 0 && successOwn > 0 {
		t.Errorf("%d failed calls in a catch-all while %d successes are listed one by one", failCatchAll, successOwn)
	}
	if strings.Contains(r.Headline, analyze.OtherDestinations) || strings.Contains(r.Headline, ":0 ") {
		t.Errorf("headline names a catch-all: %s", r.Headline)
	}
	// No table row, JUnit case or HTML bar names the placeholder or ":0".
	for name, write := range map[string]func(*bytes.Buffer) error{
		"table":       func(b *bytes.Buffer) error { return report.WriteTable(b, r, report.TableOptions{}) },
		"table --all": func(b *bytes.Buffer) error { return report.WriteTable(b, r, report.TableOptions{All: true}) },
		"junit":       func(b *bytes.Buffer) error { return report.WriteJUnit(b, r) },
		"html":        func(b *bytes.Buffer) error { return report.WriteHTML(b, r) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if loc := portZero.FindStringIndex(out); strings.Contains(out, analyze.OtherDestinations) || loc != nil {
			i := strings.Index(out, analyze.OtherDestinations)
			if loc != nil {
				i = loc[0]
			}
			t.Errorf("%s names a catch-all: ...%s...", name, out[max(i-200, 0):min(i+100, len(out))])
		}
	}
}

// checkDurations: no wait printed exceeds the window.
func checkDurations(t *testing.T, r *report.Report) {
	t.Helper()
	for _, c := range r.Connections {
		if c.BlockedMS > r.Window.DurationMS {
			t.Errorf("connection blocked %v ms in a %v ms window", c.BlockedMS, r.Window.DurationMS)
			return
		}
	}
	for _, l := range r.Lookups {
		if l.BlockedMS > r.Window.DurationMS {
			t.Errorf("lookup blocked %v ms in a %v ms window", l.BlockedMS, r.Window.DurationMS)
			return
		}
	}
	if r.Window.BlockedMS > r.Window.DurationMS {
		t.Errorf("window blocked %v ms of %v ms", r.Window.BlockedMS, r.Window.DurationMS)
	}
}

// portZero finds "host:0", "1.2.3.4:0", "(...):0", "[::1]:0".
var portZero = regexp.MustCompile(`(\.[a-z]+|\)|\]|\d):0\b`)

func failedOutcome(o report.Outcome) bool {
	switch o {
	case report.Timeout, report.Pending, report.Refused, report.Rejected, report.ServFail, report.NXDomain:
		return true
	}
	return false
}
