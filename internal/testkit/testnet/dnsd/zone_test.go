package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
)

const testZone = `
# the vendor of the story
updates.vendor.test A    198.51.100.10
updates.vendor.test AAAA 2001:db8:2::10
api.vendor.test     CNAME edge.vendor.test
edge.vendor.test    A    198.51.100.11
loop1.vendor.test   CNAME loop2.vendor.test
loop2.vendor.test   CNAME loop1.vendor.test
dangling.vendor.test CNAME gone.vendor.test
`

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 0x1234, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// summary is the part of a reply the tests compare.
type summary struct {
	ID      uint16
	RCode   dnsmessage.RCode
	Answers []string
	SOA     bool
}

func summarize(t *testing.T, msg []byte) summary {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("unpacking reply: %v", err)
	}
	s := summary{ID: m.Header.ID, RCode: m.Header.RCode}
	for _, a := range m.Answers {
		s.Answers = append(s.Answers, a.Header.Name.String()+" "+a.Body.GoString())
	}
	for _, a := range m.Authorities {
		s.SOA = s.SOA || a.Header.Type == dnsmessage.TypeSOA
	}
	return s
}

func TestAnswer(t *testing.T) {
	z := newZone(30, "test.")
	if err := z.readFile(strings.NewReader(testZone)); err != nil {
		t.Fatal(err)
	}
	a := func(name, ip string) string {
		return name + " " + (&dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()}).GoString()
	}
	aaaa := func(name, ip string) string {
		return name + " " + (&dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(ip).As16()}).GoString()
	}
	cname := func(name, target string) string {
		return name + " " + (&dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)}).GoString()
	}
	tests := []struct {
		name  string
		qname string
		qtype dnsmessage.Type
		want  summary
	}{
		{"A", "updates.vendor.test.", dnsmessage.TypeA, summary{ID: 0x1234, Answers: []string{a("updates.vendor.test.", "198.51.100.10")}}},
		{"case insensitive", "UPDATES.Vendor.TEST.", dnsmessage.TypeA, summary{ID: 0x1234, Answers: []string{a("updates.vendor.test.", "198.51.100.10")}}},
		{"AAAA", "updates.vendor.test.", dnsmessage.TypeAAAA, summary{ID: 0x1234, Answers: []string{aaaa("updates.vendor.test.", "2001:db8:2::10")}}},
		{"CNAME chased", "api.vendor.test.", dnsmessage.TypeA, summary{ID: 0x1234, Answers: []string{
			cname("api.vendor.test.", "edge.vendor.test."), a("edge.vendor.test.", "198.51.100.11")}}},
		{"NODATA after CNAME", "api.vendor.test.", dnsmessage.TypeAAAA, summary{ID: 0x1234, SOA: true, Answers: []string{
			cname("api.vendor.test.", "edge.vendor.test.")}}},
		{"CNAME asked", "api.vendor.test.", dnsmessage.TypeCNAME, summary{ID: 0x1234, Answers: []string{cname("api.vendor.test.", "edge.vendor.test.")}}},
		{"NODATA", "edge.vendor.test.", dnsmessage.TypeAAAA, summary{ID: 0x1234, SOA: true}},
		{"NXDOMAIN", "nope.vendor.test.", dnsmessage.TypeA, summary{ID: 0x1234, RCode: dnsmessage.RCodeNameError, SOA: true}},
		{"dangling CNAME", "dangling.vendor.test.", dnsmessage.TypeA, summary{ID: 0x1234, RCode: dnsmessage.RCodeNameError, SOA: true, Answers: []string{
			cname("dangling.vendor.test.", "gone.vendor.test.")}}},
		{"CNAME loop bounded", "loop1.vendor.test.", dnsmessage.TypeA, summary{ID: 0x1234, RCode: dnsmessage.RCodeServerFailure, SOA: true, Answers: []string{
			cname("loop1.vendor.test.", "loop2.vendor.test."), cname("loop2.vendor.test.", "loop1.vendor.test."),
			cname("loop1.vendor.test.", "loop2.vendor.test."), cname("loop2.vendor.test.", "loop1.vendor.test."),
			cname("loop1.vendor.test.", "loop2.vendor.test."), cname("loop2.vendor.test.", "loop1.vendor.test."),
			cname("loop1.vendor.test.", "loop2.vendor.test."), cname("loop2.vendor.test.", "loop1.vendor.test.")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := z.answer(query(t, tt.qname, tt.qtype))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summarize(t, reply)); diff != "" {
				t.Errorf("reply mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnswerRejects(t *testing.T) {
	z := newZone(30, "test.")
	resp := query(t, "updates.vendor.test.", dnsmessage.TypeA)
	resp[2] |= 0x80 // QR: a response, not a query
	for name, msg := range map[string][]byte{
		"empty":       nil,
		"short":       {0x12, 0x34, 0x01},
		"response":    resp,
		"no question": {0x12, 0x34, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, err := z.answer(msg); err == nil {
			t.Errorf("%s: answer accepted %x", name, msg)
		}
	}
}

func TestAddLineErrors(t *testing.T) {
	for _, line := range []string{
		"a.test A",
		"a.test A 2001:db8::1",
		"a.test AAAA 198.51.100.1",
		"a.test MX mail.test",
		"a.test A not-an-ip",
	} {
		if err := newZone(30, "test.").addLine(line); err == nil {
			t.Errorf("addLine(%q) accepted", line)
		}
	}
	z := newZone(30, "test.")
	if err := z.addLine("a.test A 198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if err := z.addLine("a.test CNAME b.test"); err == nil {
		t.Error("CNAME beside A accepted")
	}
}

func TestTruncate(t *testing.T) {
	z := newZone(30, "test.")
	for i := range 60 {
		if err := z.addLine(fmt.Sprintf("big.test A 198.51.100.%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := z.answer(query(t, "big.test.", dnsmessage.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) <= 512 {
		t.Fatalf("reply of %d bytes does not need truncation", len(reply))
	}
	var m dnsmessage.Message
	if err := m.Unpack(truncate(reply)); err != nil {
		t.Fatalf("unpacking truncated reply: %v", err)
	}
	if !m.Header.Truncated || len(m.Answers) != 0 || len(m.Questions) != 1 {
		t.Errorf("truncated reply: TC=%v answers=%d questions=%d, want TC, 0, 1", m.Header.Truncated, len(m.Answers), len(m.Questions))
	}
}

// FuzzAnswer feeds arbitrary bytes to the query handler: it must never panic,
// and whatever it answers must be a well-formed DNS message.
func FuzzAnswer(f *testing.F) {
	z := newZone(30, "test.")
	if err := z.readFile(strings.NewReader(testZone)); err != nil {
		f.Fatal(err)
	}
	for _, s := range realQueries(f) {
		f.Add(s)
	}
	f.Add(query(f, "api.vendor.test.", dnsmessage.TypeA))
	f.Fuzz(func(t *testing.T, msg []byte) {
		reply, err := z.answer(msg)
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(reply); err != nil {
			t.Fatalf("reply to %x does not parse: %v", msg, err)
		}
		if len(reply) > 512 {
			if err := m.Unpack(truncate(reply)); err != nil {
				t.Fatalf("truncated reply to %x does not parse: %v", msg, err)
			}
		}
	})
}
