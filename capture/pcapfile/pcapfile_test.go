package pcapfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/event"
)

type countSink struct {
	n     int
	procs []*event.Process
}

func (c *countSink) Observe(o event.Observation) {
	p, ok := o.(*event.Packet)
	if !ok {
		return
	}
	c.n++
	if p.Proc != nil {
		c.procs = append(c.procs, p.Proc)
	}
}

func testCaptures(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "captures", "*.pcap*"))
	if len(files) == 0 {
		t.Fatal("no captures under testdata/captures")
	}
	return files
}

func TestReadRecordedCaptures(t *testing.T) {
	for _, f := range testCaptures(t) {
		r, err := Open(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var s countSink
		if err := r.Run(context.Background(), &s); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		st := r.Stats()
		if s.n == 0 || st.Packets == 0 || uint64(s.n)+st.Undecodable+st.Truncated > st.Packets {
			t.Errorf("%s: delivered %d, stats %+v: every packet must be delivered or counted", f, s.n, st)
		}
		r.Close()
	}
}

// pcapHeader is a classic little-endian microsecond pcap header.
func pcapHeader(link uint32) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], link)
	return h
}

// TestHugeRecordAllocatesNothingBig: a record that claims gigabytes is an
// error, not an allocation.
func TestHugeRecordAllocatesNothingBig(t *testing.T) {
	rec := make([]byte, 16)
	binary.LittleEndian.PutUint32(rec[8:], 0xfffffff0)
	binary.LittleEndian.PutUint32(rec[12:], 0xfffffff0)
	data := append(pcapHeader(1), rec...)
	data = append(data, make([]byte, 100)...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader("huge", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background(), &countSink{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "packet 1") {
		t.Errorf("err = %v, want an error naming packet 1", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("reading a hostile record allocated %d bytes", grew)
	}
}

// TestHugePcapngBlockAllocatesNothingBig: the same for a pcapng enhanced
// packet block that claims a 4 GB packet and a 4 GB block.
func TestHugePcapngBlockAllocatesNothingBig(t *testing.T) {
	le := binary.LittleEndian
	var b []byte
	// Section header block (28 bytes), interface description (20 bytes).
	b = le.AppendUint32(b, 0x0a0d0d0a)
	b = le.AppendUint32(b, 28)
	b = le.AppendUint32(b, 0x1a2b3c4d)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, 0xffffffffffffffff)
	b = le.AppendUint32(b, 28)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, 20)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 20)
	// Enhanced packet block claiming 4 GB.
	b = le.AppendUint32(b, 6)
	b = le.AppendUint32(b, 0xfffffff0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0xffffff00)
	b = le.AppendUint32(b, 0xffffff00)
	b = append(b, make([]byte, 64)...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader("huge.pcapng", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background(), &countSink{})
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Error("a 4 GB block in a 176-byte file read without error")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("reading a hostile block allocated %d bytes", grew)
	}
}

// FuzzReader: any byte string read as a capture, through the decoder and
// the analyzer to a report, must end with nil or an error: no panic, no
// hang, no large allocation.
func FuzzReader(f *testing.F) {
	for _, name := range testCaptures(f) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 4096 {
			b = b[:4096]
		}
		f.Add(b)
	}
	f.Add(pcapHeader(239))
	f.Add([]byte("\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader("fuzz", bytes.NewReader(data))
		if err != nil {
			return
		}
		an := analyze.New(analyze.Config{})
		r.Run(context.Background(), an)
		an.SourceStats(r.Stats())
		an.Finish()
	})
}
