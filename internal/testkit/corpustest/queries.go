package corpustest

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

// RecordedQueries returns the DNS queries (UDP payloads to port 53) of the
// project's own recorded captures, testdata/captures/*.pcap: real queries as
// resolvers sent them, for fuzz seeds and parser tests. It fails tb when no
// capture is found, so a seed corpus can never silently be empty.
func RecordedQueries(tb testing.TB) [][]byte {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatalf("finding the repository: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(root, "testdata", "captures", "*.pcap"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no recorded captures under %s/testdata/captures: %v", root, err)
	}
	var out [][]byte
	for _, name := range files {
		out = append(out, queriesIn(tb, name)...)
	}
	return out
}

func queriesIn(tb testing.TB, name string) [][]byte {
	tb.Helper()
	f, err := os.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatalf("reading %s: %v", name, err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("reading %s: %v", name, err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && udp.DstPort == 53 {
			out = append(out, udp.Payload)
		}
	}
}
