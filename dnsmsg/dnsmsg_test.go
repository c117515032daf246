package dnsmsg

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

// header builds a 12-byte DNS header.
func header(id uint16, flags uint16, qd, an uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// wwwExample is "WWW.Example.com" uncompressed, at offset 12 in the messages below.
var wwwExample = []byte("\x03WWW\x07Example\x03com\x00")

type view struct {
	HeaderOK, QuestionOK bool
	ID                   uint16
	Response             bool
	Rcode                uint8
	QName                string
	QType                uint16
	Answers              []rrView
	Err                  error
}

type rrView struct {
	Name   string
	Type   uint16
	TTL    uint32
	Addr   netip.Addr
	Target string
}

func viewOf(m *Msg, err error) view {
	v := view{HeaderOK: m.HeaderOK(), QuestionOK: m.QuestionOK(), ID: m.ID, Response: m.Response, Rcode: m.Rcode,
		QName: string(m.QName), QType: m.QType, Err: err}
	for _, rr := range m.Answers {
		v.Answers = append(v.Answers, rrView{string(rr.Name), rr.Type, rr.TTL, rr.Addr, string(rr.Target)})
	}
	return v
}

var opts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) }),
}

func TestUnpack(t *testing.T) {
	q := cat(wwwExample, u16(TypeA), u16(1))
	tests := []struct {
		name string
		msg  []byte
		want view
	}{
		{"answer with compression and cname", cat(header(7, 0x8180, 1, 2), q,
			[]byte{0xc0, 12}, u16(TypeCNAME), u16(1), u32(300), u16(6), []byte("\x03cdn\xc0\x10"), // cdn.example.com
			[]byte{0xc0, 45}, u16(TypeA), u16(1), u32(60), u16(4), []byte{192, 0, 2, 7}),
			view{true, true, 7, true, 0, "www.example.com", TypeA, []rrView{
				{"www.example.com", TypeCNAME, 300, netip.Addr{}, "cdn.example.com"},
				{"cdn.example.com", TypeA, 60, netip.MustParseAddr("192.0.2.7"), ""}}, nil}},
		{"aaaa", cat(header(8, 0x8180, 1, 1), q, []byte{0xc0, 12}, u16(TypeAAAA), u16(1), u32(5), u16(16),
			netip.MustParseAddr("2001:db8::1").AsSlice()),
			view{true, true, 8, true, 0, "www.example.com", TypeA, []rrView{{"www.example.com", TypeAAAA, 5, netip.MustParseAddr("2001:db8::1"), ""}}, nil}},
		{"root name", cat(header(1, 0x0100, 1, 0), []byte{0}, u16(TypeNS), u16(1)),
			view{true, true, 1, false, 0, ".", TypeNS, nil, nil}},
		{"hostile bytes are escaped", cat(header(2, 0, 1, 0), []byte("\x05a\nb.\x1b\x02\\Z\x00"), u16(TypeA), u16(1)),
			view{true, true, 2, false, 0, `a\010b\046\027.\092z`, TypeA, nil, nil}},
		{"nxdomain", cat(header(3, 0x8183, 1, 0), q), view{true, true, 3, true, 3, "www.example.com", TypeA, nil, nil}},
		{"pointer loop keeps the header", cat(header(4, 0, 1, 0), []byte{0xc0, 12}, u16(1), u16(1)),
			view{HeaderOK: true, ID: 4, Err: ErrNameLoop}},
		{"forward pointer", cat(header(4, 0, 1, 0), []byte{0xc0, 14, 0}, u16(1), u16(1)),
			view{HeaderOK: true, ID: 4, Err: ErrNameLoop}},
		{"two-step loop", cat(header(4, 0, 1, 0), []byte{1, 'a', 0xc0, 12}, u16(1), u16(1)),
			view{HeaderOK: true, ID: 4, Err: ErrNameLoop}},
		{"truncated answer keeps the question", cat(header(5, 0x8180, 1, 1), q, []byte{0xc0, 12}, u16(TypeA)),
			view{true, true, 5, true, 0, "www.example.com", TypeA, nil, ErrShort}},
		{"bad A length", cat(header(6, 0x8180, 1, 1), q, []byte{0xc0, 12}, u16(TypeA), u16(1), u32(1), u16(3), []byte{1, 2, 3}),
			view{true, true, 6, true, 0, "www.example.com", TypeA, nil, ErrRData}},
		{"reserved label type", cat(header(6, 0, 1, 0), []byte{0x40, 0}, u16(1), u16(1)),
			view{HeaderOK: true, ID: 6, Err: ErrLabelType}},
		{"short header", []byte{1, 2, 3}, view{Err: ErrShort}},
	}
	var m Msg
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Unpack(tt.msg)
			if diff := cmp.Diff(tt.want, viewOf(&m, err), opts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNameTooLong(t *testing.T) {
	var name []byte
	for range 5 {
		name = append(name, 63)
		name = append(name, make([]byte, 63)...)
	}
	name = append(name, 0)
	var m Msg
	if err := m.Unpack(cat(header(1, 0, 1, 0), name, u16(1), u16(1))); !errors.Is(err, ErrNameLong) {
		t.Errorf("got %v, want ErrNameLong", err)
	}
}

func TestSplitTCP(t *testing.T) {
	stream := []byte{0, 2, 'a', 'b', 0, 3, 'c'}
	msg, rest, ok := SplitTCP(stream)
	if !ok || string(msg) != "ab" || len(rest) != 3 {
		t.Fatalf("first: %q %q %v", msg, rest, ok)
	}
	if msg, rest2, ok := SplitTCP(rest); ok || msg != nil || len(rest2) != 3 {
		t.Fatalf("incomplete: %q %q %v", msg, rest2, ok)
	}
	if _, _, ok := SplitTCP([]byte{0}); ok {
		t.Fatal("one byte split")
	}
}

func TestTypeString(t *testing.T) {
	got := []string{TypeString(1), TypeString(28), TypeString(5), TypeString(65), TypeString(29), TypeString(65280)}
	want := []string{"A", "AAAA", "CNAME", "HTTPS", "TYPE29", "TYPE65280"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func corpusSeeds(tb testing.TB) [][]byte {
	dir, ok := corpustest.Find()
	if !ok {
		return nil
	}
	var out [][]byte
	for _, c := range []string{"tcpdump__dns_udp.pcap", "arkime__dns-wiresharkrepo.pcap", "ndpi__bad-dns-traffic.pcap", "zeek__wikipedia.pcap", "ndpi__dns_fragmented.pcap"} {
		for _, p := range udpPayloads(tb, filepath.Join(dir, c)) {
			out = append(out, p)
		}
	}
	return out
}

func TestUnpackAllocs(t *testing.T) {
	msgs := corpusSeeds(t)
	if len(msgs) == 0 {
		t.Skip("public capture corpus not found (see ../../shared/corpus/MANIFEST.md)")
	}
	var m Msg
	for _, b := range msgs {
		m.Unpack(b)
	}
	if n := testing.AllocsPerRun(10, func() {
		for _, b := range msgs {
			m.Unpack(b)
		}
	}); n != 0 {
		t.Errorf("%v allocations per pass over %d messages in steady state, want 0", n, len(msgs))
	}
}

func BenchmarkUnpack(b *testing.B) {
	msg := cat(header(7, 0x8180, 1, 2), wwwExample, u16(TypeA), u16(1),
		[]byte{0xc0, 12}, u16(TypeCNAME), u16(1), u32(300), u16(6), []byte("\x03cdn\xc0\x10"),
		[]byte{0xc0, 45}, u16(TypeA), u16(1), u32(60), u16(4), []byte{192, 0, 2, 7})
	var m Msg
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := m.Unpack(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	for _, s := range corpusSeeds(f) {
		f.Add(s)
	}
	f.Add(cat(header(4, 0, 1, 0), []byte{1, 'a', 0xc0, 12}, u16(1), u16(1)))
	var m Msg
	f.Fuzz(func(t *testing.T, b []byte) {
		err := m.Unpack(b)
		if err == nil && !m.HeaderOK() {
			t.Fatal("success without a header")
		}
		check := func(name []byte) {
			if len(name) > 4*maxNameWire {
				t.Fatalf("name of %d bytes", len(name))
			}
			for _, c := range name {
				if c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z') {
					t.Fatalf("unsafe byte %#x in name %q", c, name)
				}
			}
		}
		check(m.QName)
		for _, rr := range m.Answers {
			check(rr.Name)
			check(rr.Target)
		}
	})
}
