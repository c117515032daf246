package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// realQueries returns the DNS queries (UDP payloads to port 53) found in the
// recorded captures of testdata/captures: the Go resolver's A and AAAA
// queries with EDNS, as they really went out.
func realQueries(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../../../../testdata/captures/*.pcap")
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := pcapgo.NewReader(f)
		if err != nil {
			f.Close()
			tb.Fatalf("reading %s: %v", name, err)
		}
		for {
			data, _, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tb.Fatalf("reading %s: %v", name, err)
			}
			p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
			if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && udp.DstPort == 53 {
				out = append(out, udp.Payload)
			}
		}
		f.Close()
	}
	return out
}

// TestRealQueries answers every query the captures hold, so the fuzz seeds
// are known to be real, parseable queries.
func TestRealQueries(t *testing.T) {
	qs := realQueries(t)
	if len(qs) < 10 {
		t.Fatalf("found %d DNS queries in testdata/captures, want at least 10", len(qs))
	}
	z := newZone(30, "test.")
	for _, q := range qs {
		if _, err := z.answer(q); err != nil {
			t.Errorf("answering recorded query %x: %v", q, err)
		}
	}
}
