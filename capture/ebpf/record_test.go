//go:build linux

package ebpf

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
)

func comm(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

func record(t testing.TB, e egressEvent) []byte {
	b, err := binary.Append(nil, binary.LittleEndian, &e)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != recordSize {
		t.Fatalf("record is %d bytes, want %d", len(b), recordSize)
	}
	return b
}

func TestToSock(t *testing.T) {
	v4 := func(a, b, c, d byte) (r [16]uint8) { r[0], r[1], r[2], r[3] = a, b, c, d; return r }
	v6 := func(s string) [16]uint8 { return netip.MustParseAddr(s).As16() }
	const sk = 0xffff8880_12345678
	tests := []struct {
		name string
		in   egressEvent
		want *event.Sock
	}{{
		name: "connect v4",
		in: egressEvent{Ts: 1000, Sk: sk, Gen: 3, Tgid: 42, Tid: 43, Kind: kindConnect, Family: afInet,
			Sport: 40000, Dport: 443, Saddr: v4(198, 18, 0, 1), Daddr: v4(198, 51, 100, 7), Comm: comm("curl")},
		want: &event.Sock{Time: 1500, Kind: event.SockConnect, Cookie: sk ^ 3<<48, Proto: event.ProtoTCP,
			Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort("198.51.100.7:443"),
			Proc: &event.Process{PID: 42, Comm: "curl"}},
	}, {
		name: "error v6 with a full 15-byte comm",
		in: egressEvent{Ts: 2000, Sk: sk, Gen: 1, Tgid: 7, Kind: kindError, Err: 111, Family: afInet6,
			Sport: 5, Dport: 80, Saddr: v6("2001:db8::1"), Daddr: v6("2001:db8::2"), Comm: comm("abcdefghijklmnopq")},
		want: &event.Sock{Time: 2500, Kind: event.SockError, Errno: 111, Cookie: sk ^ 1<<48, Proto: event.ProtoTCP,
			Src: netip.MustParseAddrPort("[2001:db8::1]:5"), Dst: netip.MustParseAddrPort("[2001:db8::2]:80"),
			Proc: &event.Process{PID: 7, Comm: "abcdefghijklmno"}},
	}, {
		name: "v4-mapped on a dual-stack socket is unmapped",
		in: egressEvent{Ts: 0, Sk: sk, Kind: kindRetransmit, Family: afInet6, Sport: 1, Dport: 2,
			Saddr: v6("::ffff:198.18.0.1"), Daddr: v6("::ffff:203.0.113.9")},
		want: &event.Sock{Time: 500, Kind: event.SockRetransmit, Cookie: sk, Proto: event.ProtoTCP,
			Src: netip.MustParseAddrPort("198.18.0.1:1"), Dst: netip.MustParseAddrPort("203.0.113.9:2"),
			Proc: &event.Process{}},
	}, {
		name: "connect failed before any SYN has no source",
		in: egressEvent{Ts: 10, Sk: sk, Gen: 9, Tgid: 1, Kind: kindConnectFail, Err: 101, Family: afInet,
			Dport: 443, Daddr: v4(192, 0, 2, 1)},
		want: &event.Sock{Time: 510, Kind: event.SockError, Errno: 101, Cookie: sk ^ 9<<48, Proto: event.ProtoTCP,
			Dst: netip.MustParseAddrPort("192.0.2.1:443"), Proc: &event.Process{PID: 1}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toSock(record(t, tt.in), 500, noLeaderCache())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("toSock() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToSockRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"short":          make([]byte, recordSize-1),
		"unknown kind":   record(t, egressEvent{Kind: 99, Family: afInet}),
		"unknown family": record(t, egressEvent{Kind: kindConnect, Family: 3}),
		"error no errno": record(t, egressEvent{Kind: kindError, Family: afInet}),
	} {
		if got, err := toSock(in, 0, nil); err == nil {
			t.Errorf("%s: toSock() = %+v, want an error", name, got)
		}
	}
}

// FuzzToSock is seeded with records the kernel program wrote during the
// privileged tests (testdata/records/*.bin, refreshed with -update).
func FuzzToSock(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/records/*.bin")
	if len(seeds) == 0 {
		f.Fatal("no seed records in testdata/records")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := toSock(b, 0, noLeaderCache())
		if err != nil {
			return
		}
		if s.Kind < event.SockConnect || s.Kind > event.SockClose || !s.Dst.IsValid() || s.Proc == nil {
			t.Fatalf("toSock accepted a record into an invalid event: %+v", s)
		}
		if s.Kind == event.SockError && s.Errno <= 0 {
			t.Fatalf("error event without errno: %+v", s)
		}
	})
}

// TestDecodeRecordMatchesLayout: the hand-written decoder reads what
// encoding/binary reads from the generated struct's layout.
func TestDecodeRecordMatchesLayout(t *testing.T) {
	want := egressEvent{Ts: 1, Sk: 2, Gen: 3, Tgid: 4, Tid: 5, Err: -6, Kind: 7, Family: 8, Oldstate: 9, Newstate: 10,
		Sport: 11, Dport: 12, Pad: 13}
	for i := range 16 {
		want.Saddr[i], want.Daddr[i], want.Comm[i] = uint8(20+i), uint8(40+i), int8(60+i)
	}
	b, err := binary.Append(nil, binary.LittleEndian, &want)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != recordSize {
		t.Fatalf("struct event is %d bytes, recordSize says %d", len(b), recordSize)
	}
	if got := decodeRecord(b); got != want {
		t.Errorf("decodeRecord = %+v, want %+v", got, want)
	}
}

func TestToStack(t *testing.T) {
	var e egressStackEvent
	e.H = egressEvent{Sk: 0xffff8880_12345678, Gen: 5, Tgid: 42, Kind: kindStack}
	e.Size = 3 * 8
	e.SpWord = 0x401234
	e.Ips[0], e.Ips[1], e.Ips[2], e.Ips[3] = 0x10, 0x20, 0x30, 0x40 // the fourth is past Size
	b, err := binary.Append(nil, binary.LittleEndian, &e)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != stackRecordSize || recordKind(b) != kindStack {
		t.Fatalf("record is %d bytes of kind %d, want %d of kind %d", len(b), recordKind(b), stackRecordSize, kindStack)
	}
	got, err := toStack(b)
	if err != nil {
		t.Fatal(err)
	}
	want := rawStack{cookie: 0xffff8880_12345678 ^ 5<<48, pid: 42, pcs: []uint64{0x10, 0x20, 0x30}, spWord: 0x401234}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(rawStack{})); diff != "" {
		t.Errorf("toStack (-want +got):\n%s", diff)
	}
	e.Size = -14 // -EFAULT: nothing to unwind
	b, _ = binary.Append(nil, binary.LittleEndian, &e)
	if got, err := toStack(b); err != nil || got.err != -14 || got.pcs != nil {
		t.Errorf("failed unwind: %+v, %v; want err -14 and no frames", got, err)
	}
	if _, err := toStack(b[:recordSize]); err == nil {
		t.Error("short stack record: no error")
	}
}

func FuzzToStack(f *testing.F) {
	var e egressStackEvent
	e.H = egressEvent{Sk: 1, Gen: 2, Tgid: 3, Kind: kindStack}
	e.Size, e.Ips[0], e.Ips[1] = 16, 0x401000, 0x402000
	b, _ := binary.Append(nil, binary.LittleEndian, &e)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := toStack(b)
		if err != nil {
			return
		}
		if len(st.pcs) > maxFrames || (st.err != 0 && st.pcs != nil) {
			t.Fatalf("toStack gave %d frames, err %d", len(st.pcs), st.err)
		}
	})
}

// TestRingBytesChecked: a ring size the kernel would refuse is a clear
// error before anything is loaded (no privileges needed to see it).
func TestRingBytesChecked(t *testing.T) {
	for _, n := range []int{3000, 4096 + 1, 3 << 12, 2 << 30} {
		_, err := Open(Options{AllProcesses: true, RingBytes: n})
		if err == nil || !strings.Contains(err.Error(), "ring buffer size") {
			t.Errorf("RingBytes %d: err = %v, want the ring size refused", n, err)
		}
	}
}
