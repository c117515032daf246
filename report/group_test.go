package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestGroupedTable: with several hosts the table lists failed destinations
// first, the longest total wait first, one row each, and sums up the rest.
func TestGroupedTable(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	conn := func(host, dst, src string, outcome Outcome, count int, blocked float64) Connection {
		return Connection{Host: host, DstIP: netip.MustParseAddr(dst), DstPort: 443, SrcIP: netip.MustParseAddr(src), Outcome: outcome, Count: count, Attempts: count,
			BlockedMS: blocked, BlockedSumMS: blocked * float64(count), Start: t0, End: t0}
	}
	r := &Report{
		Headline:  "2 hosts made ...",
		HostsSeen: 2,
		Window:    Window{Start: t0, End: t0.Add(time.Minute), DurationMS: 60000},
		Connections: []Connection{
			conn("ok.example", "198.51.100.1", "198.18.0.2", Established, 1, 1),
			conn("slow.example", "198.51.100.2", "198.18.0.2", Timeout, 1, 3000),
			conn("slow.example", "198.51.100.2", "198.18.0.3", Timeout, 2, 2000),
			conn("closed.example", "198.51.100.3", "198.18.0.3", Refused, 1, 1),
			conn("ok.example", "198.51.100.1", "198.18.0.3", Established, 5, 1),
		},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, r, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	slow, closed := strings.Index(out, "slow.example"), strings.Index(out, "closed.example")
	if slow < 0 || closed < 0 || slow > closed || strings.Count(out, "slow.example") != 1 {
		t.Errorf("want one row per failed destination, the longest wait first:\n%s", out)
	}
	if !strings.Contains(out, "timeout x3") || !strings.Contains(out, "7.00 s") {
		t.Errorf("want slow.example's 3 calls and 7 s of waits:\n%s", out)
	}
	if strings.Contains(out, "ok.example") || !strings.Contains(out, "and 6 calls that succeeded") || !strings.Contains(out, "to 1 destination") {
		t.Errorf("want the successes summed up, not listed:\n%s", out)
	}
	if !strings.Contains(out, "Outbound connections (5 records, 10 calls)") {
		t.Errorf("want the section to count records and calls:\n%s", out)
	}
}
