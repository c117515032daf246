package pcapfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/egress-dev/egress/internal/testkit/gencap"
)

// record is one record as a reader returned it.
type record struct {
	ns      int64
	wireLen int
	data    string
}

// readClassic reads every record with the classic reader, and whether it
// ended in an error other than io.EOF.
func readClassic(t testing.TB, b []byte) (recs []record, failed bool) {
	c, err := newClassic(bufio.NewReaderSize(bytes.NewReader(b), 1<<20))
	if err != nil {
		return nil, true
	}
	for {
		d, ns, wire, err := c.next()
		if err != nil {
			return recs, !errors.Is(err, io.EOF)
		}
		recs = append(recs, record{ns, wire, string(d)})
	}
}

// readPcapgo reads every record with gopacket's pcap reader, the one the
// classic reader replaced.
func readPcapgo(t testing.TB, b []byte) (recs []record, failed bool) {
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, true
	}
	for {
		d, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			return recs, !errors.Is(err, io.EOF)
		}
		recs = append(recs, record{ci.Timestamp.UnixNano(), ci.Length, string(d)})
	}
}

// sameTime says whether the classic reader's time got is pcapgo's want. A
// microsecond fraction past 2^32/1000 (hostile: a fraction is below 10^6)
// wraps in pcapgo's 32-bit product; the classic reader does not wrap.
func sameTime(got, want int64) bool {
	return got == want || got > want && (got-want)%(1<<32) == 0
}

// sameAsPcapgo checks the classic reader against pcapgo on b: the same
// records, and an error where pcapgo gives one. (pcapgo also unzips; the
// classic reader is given unzipped bytes by newReader.)
func sameAsPcapgo(t *testing.T, name string, b []byte) {
	t.Helper()
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		return
	}
	got, gotFailed := readClassic(t, b)
	want, wantFailed := readPcapgo(t, b)
	if gotFailed && !wantFailed && len(got) == len(want) && headerOnlyAtEnd(b, got) {
		// pcapgo takes a file that ends right after a record's header for
		// a clean end; it was cut short, and the classic reader says so.
		wantFailed = true
	}
	if gotFailed != wantFailed || len(got) != len(want) {
		t.Fatalf("%s: classic read %d records (error: %v), pcapgo %d (error: %v)", name, len(got), gotFailed, len(want), wantFailed)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !sameTime(g.ns, w.ns) || g.wireLen != w.wireLen || g.data != w.data {
			t.Fatalf("%s: record %d: classic %d ns, %d bytes on the wire, %d captured; pcapgo %d ns, %d, %d",
				name, i+1, g.ns, g.wireLen, len(g.data), w.ns, w.wireLen, len(w.data))
		}
	}
}

// headerOnlyAtEnd says whether b holds, after the records read, one record
// header and nothing more.
func headerOnlyAtEnd(b []byte, recs []record) bool {
	n := pcapHeaderLen
	for _, r := range recs {
		n += recordHeader + len(r.data)
	}
	return len(b)-n == recordHeader
}

// pcapFile builds a classic pcap file: order and magic as given, snap
// length snap, and records of the given captured and wire lengths.
func pcapFile(order binary.AppendByteOrder, magic uint32, snap uint32, recs ...[2]uint32) []byte {
	var b []byte
	b = order.AppendUint32(b, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, snap)
	b = order.AppendUint32(b, 1)
	for i, r := range recs {
		b = order.AppendUint32(b, 1735689600+uint32(i))
		b = order.AppendUint32(b, 999999)
		b = order.AppendUint32(b, r[0])
		b = order.AppendUint32(b, r[1])
		for j := uint32(0); j < r[0]; j++ {
			b = append(b, byte(i+int(j)))
		}
	}
	return b
}

func TestClassicMatchesPcapgo(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	cases := map[string][]byte{
		"little-endian microseconds": pcapFile(le, 0xa1b2c3d4, 65535, [2]uint32{60, 60}, [2]uint32{1514, 1514}, [2]uint32{0, 0}),
		"big-endian microseconds":    pcapFile(be, 0xa1b2c3d4, 65535, [2]uint32{60, 60}, [2]uint32{100, 1500}),
		"little-endian nanoseconds":  pcapFile(le, 0xa1b23c4d, 65535, [2]uint32{60, 60}),
		"big-endian nanoseconds":     pcapFile(be, 0xa1b23c4d, 65535, [2]uint32{60, 60}),
		// Longer than the 1 MiB buffer, allowed by the snap length.
		"record past the buffer": pcapFile(le, 0xa1b2c3d4, 4<<20, [2]uint32{60, 60}, [2]uint32{3 << 20, 3 << 20}, [2]uint32{60, 60}),
		"past the snap length":   pcapFile(le, 0xa1b2c3d4, 1500, [2]uint32{300000, 300000}),
		"past the wire length":   pcapFile(le, 0xa1b2c3d4, 65535, [2]uint32{100, 60}),
		"no records":             pcapFile(le, 0xa1b2c3d4, 65535),
		"cut header":             pcapFile(le, 0xa1b2c3d4, 65535)[:20],
	}
	full := pcapFile(le, 0xa1b2c3d4, 65535, [2]uint32{60, 60}, [2]uint32{80, 80})
	cases["cut record header"] = full[:24+16+60+9]
	cases["cut record"] = full[:len(full)-1]
	cases["cut after a record header"] = full[:24+16+60+16]
	big := cases["record past the buffer"]
	cases["cut long record"] = big[:len(big)-100]
	for name, b := range cases {
		sameAsPcapgo(t, name, b)
	}
	var gen bytes.Buffer
	if _, err := gencap.Write(&gen, gencap.Config{TargetPackets: 20000, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	sameAsPcapgo(t, "gencap", gen.Bytes())
	for _, f := range testCaptures(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sameAsPcapgo(t, f, b)
	}
}

// FuzzClassic: on any input the classic reader returns what pcapgo's
// reader does, record for record, and fails where it fails.
func FuzzClassic(f *testing.F) {
	le := binary.LittleEndian
	f.Add(pcapFile(le, 0xa1b2c3d4, 65535, [2]uint32{60, 60}, [2]uint32{20, 40}))
	f.Add(pcapFile(binary.BigEndian, 0xa1b23c4d, 65535, [2]uint32{60, 60}))
	f.Add(pcapFile(le, 0xa1b2c3d4, 100, [2]uint32{300, 300}))
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsPcapgo(t, "fuzz", b)
	})
}
