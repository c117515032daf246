package analyze_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/internal/testkit/gencap"
)

// BenchmarkReplay measures the whole replay path (pcap reading, decoding,
// analysis, report) on a deterministic generated capture of about 64 MB of
// ~500-byte packets with thousands of concurrent flows and 20% DNS, held in
// memory. scripts/bench-replay.sh does the same end to end on 0.5 and 2 GB
// files, with peak RSS and tshark for comparison (make bench).
func BenchmarkReplay(b *testing.B) {
	var capture bytes.Buffer
	st, err := gencap.Write(&capture, gencap.Config{TargetBytes: 64 << 20, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	data := capture.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		rd, err := pcapfile.NewReader("bench", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		an := analyze.New(analyze.Config{})
		if err := rd.Run(context.Background(), an); err != nil {
			b.Fatal(err)
		}
		if r := an.Finish(); len(r.Connections) == 0 {
			b.Fatal("no connections found")
		}
	}
	b.ReportMetric(float64(st.Packets)*float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
