package decode

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

func corpusDir(t testing.TB) string { return corpustest.Dir(t) }

type frame struct {
	num  int // 1-based, as tshark numbers frames
	link LinkType
	data []byte
	time int64
}

// readCapture returns every frame of a pcap or pcapng capture.
func readCapture(t testing.TB, path string) []frame {
	t.Helper()
	var frames []frame
	for _, f := range corpustest.Read(t, path) {
		frames = append(frames, frame{f.Num, LinkType(f.Link), f.Data, f.Time})
	}
	return frames
}

func corpusCaptures(t testing.TB) []string {
	dir := corpusDir(t)
	var out []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Fatalf("no captures in %s", dir)
	}
	return out
}

// TestCorpusSYNCount compares, for every corpus capture, the number of TCP
// SYN (without ACK) frames the decoder sees with tshark's count in the
// capture's truth file. It exercises every link type and tunnel there.
func TestCorpusSYNCount(t *testing.T) {
	total := 0
	for _, path := range corpusCaptures(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path + ".truth.json")
			if err != nil {
				t.Fatal(err)
			}
			var truth struct {
				Summary struct {
					SYNTransmissions int `json:"syn_transmissions"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(raw, &truth); err != nil {
				t.Fatal(err)
			}
			d := NewDecoder(Options{})
			syns, undecodable := 0, 0
			var p event.Packet
			for _, f := range readCapture(t, path) {
				p.Time = f.time
				err := d.Decode(f.link, f.data, &p)
				if err != nil && !errors.Is(err, ErrFragment) {
					undecodable++
				}
				if err == nil && p.Proto == event.ProtoTCP && p.Flags&(event.TCPSyn|event.TCPAck) == event.TCPSyn {
					syns++
				}
			}
			total += syns
			if syns != truth.Summary.SYNTransmissions {
				t.Errorf("SYN frames: got %d, tshark counts %d (%d frames undecodable)", syns, truth.Summary.SYNTransmissions, undecodable)
			}
		})
	}
	t.Logf("SYN frames over the corpus: %d", total)
}
