package analyze

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/gencap"
	"github.com/egress-dev/egress/report"
)

// TestReuseChangesNothing: finished flows, attempts and lookups are reused
// (tcp.go, dns.go); a reused one that something still pointed to would
// change an earlier record, a waiting list or a name. The same busy capture,
// past every table's bound (flows and lookups evicted, records folded and
// squeezed, CNAME chains, windows), gives byte-identical reports with reuse
// and with every object allocated anew.
func TestReuseChangesNothing(t *testing.T) {
	var capture bytes.Buffer
	if _, err := gencap.Write(&capture, gencap.Config{TargetPackets: 60_000, Seed: 7, Flows: 300, Clients: 400,
		Names: 2048, MeanPacketSize: 150, PacketsPerSecond: 2000, DropShare: 0.25, RefuseShare: 0.03,
		RejectShare: 0.02, InboundShare: 0.1, ScanShare: 0.5}); err != nil {
		t.Fatal(err)
	}
	local := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8:18::/48")}
	for _, cfg := range []Config{
		{MaxFlows: 128, MaxLookups: 64, MaxRecords: 200, MaxFoldKeys: 300, Local: local},
		{MaxFlows: 128, MaxLookups: 64, MaxRecords: 200, MaxFoldKeys: 300},
		{MaxRecords: 100000, Local: local},
	} {
		var out [2]bytes.Buffer
		var reused int
		for i, noReuse := range []bool{true, false} {
			rd, err := pcapfile.NewReader("reuse", bytes.NewReader(capture.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			a := New(cfg)
			a.noReuse = noReuse
			if err := rd.Run(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			reused = a.reused
			r := a.Finish()
			if err := report.WriteJSON(&out[i], r); err != nil {
				t.Fatal(err)
			}
		}
		if reused == 0 {
			t.Fatalf("%+v: nothing was left to reuse; the test does not exercise reuse", cfg)
		}
		if !bytes.Equal(out[0].Bytes(), out[1].Bytes()) {
			t.Errorf("%+v: the report with reuse differs from the one without (%d and %d bytes)", cfg, out[1].Len(), out[0].Len())
		}
	}
}

// TestReuseOfAWaitingAttempt: a flow evicted while its attempt still waits
// for its host's next action is reused at once by another host's call; the
// first host acting later must not end the second host's call. (Today the
// evicting sweep also clears such waits; recycleFlow does not rely on it.)
func TestReuseOfAWaitingAttempt(t *testing.T) {
	other := netip.MustParseAddr("198.18.0.3")
	pkts := []struct {
		sec      float64
		src      netip.Addr
		sport    uint16
		dst      netip.Addr
		dport    uint16
		flags    uint8
		seq, ack uint32
	}{
		{0, app, 40000, vendor, 443, syn, 100, 0},      // app's call, never answered
		{0.1, other, 41001, vendor, 443, syn, 200, 0},  // three calls fill the table
		{0.2, other, 41002, vendor, 443, syn, 300, 0},  //
		{0.3, other, 41003, vendor, 443, syn, 400, 0},  //
		{0.4, other, 41004, vendor, 8443, syn, 500, 0}, // evicts app's flow, reuses it
		{0.5, app, 40001, vendor, 80, syn, 600, 0},     // app acts: not other's give-up
	}
	var out [2]bytes.Buffer
	for i, noReuse := range []bool{true, false} {
		a := New(Config{MaxFlows: 4, LocalAny: true})
		a.noReuse = noReuse
		for _, p := range pkts {
			a.Packet(seg(p.sec, p.src, p.sport, p.dst, p.dport, p.flags, p.seq, p.ack, ""))
		}
		if !noReuse && a.reused == 0 {
			t.Fatal("no flow was reused; the test does not exercise reuse")
		}
		if err := report.WriteJSON(&out[i], a.Finish()); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out[0].Bytes(), out[1].Bytes()) {
		t.Errorf("reusing the evicted flow changed the report:\nwithout reuse:\n%s\nwith reuse:\n%s", out[0].String(), out[1].String())
	}
}
