package appproto

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

func corpusDir(t testing.TB) string { return corpustest.Dir(t) }

// tcpPayloads returns the TCP payload of every frame of a capture that has
// one, by 1-based frame number, decoded by package decode.
func tcpPayloads(t testing.TB, path string) map[int][]byte {
	t.Helper()
	out := map[int][]byte{}
	d := decode.NewDecoder(decode.Options{})
	for _, f := range corpustest.Read(t, path) {
		var p event.Packet
		if err := d.Decode(decode.LinkType(f.Link), f.Data, &p); err == nil && p.Proto == event.ProtoTCP && len(p.Payload) > 0 {
			out[f.Num] = append([]byte(nil), p.Payload...)
		}
	}
	return out
}

type nameRow struct {
	capture, kind string
	frame         int
	name          string
	segments      []int // frames whose payloads make up the request, when several
}

func readNames(t testing.TB) []nameRow {
	f, err := os.Open(filepath.Join("testdata", "corpus_names.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []nameRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < 4 {
			t.Fatalf("bad row %q", sc.Text())
		}
		n, err := strconv.Atoi(fs[2])
		if err != nil {
			t.Fatal(err)
		}
		r := nameRow{fs[0], fs[1], n, fs[3], nil}
		if len(fs) > 4 && fs[4] != "" {
			for _, s := range strings.Split(fs[4], ",") {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatal(err)
				}
				r.segments = append(r.segments, n)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// TestCorpusNames checks SNI and Host against tshark on every ClientHello
// and HTTP request of the public corpus, and that no other TCP payload
// there is taken for a ClientHello.
func TestCorpusNames(t *testing.T) {
	dir := corpusDir(t)
	rows := readNames(t)
	byCapture := map[string]map[int]nameRow{}
	for _, r := range rows {
		if byCapture[r.capture] == nil {
			byCapture[r.capture] = map[int]nameRow{}
		}
		byCapture[r.capture][r.frame] = r
	}
	checked := 0
	for capture, want := range byCapture {
		payloads := tcpPayloads(t, filepath.Join(dir, capture))
		for frame, r := range want {
			b, ok := payloads[frame]
			if !ok {
				t.Errorf("%s frame %d: no TCP payload decoded", capture, frame)
				continue
			}
			if r.segments != nil {
				b = nil
				for _, s := range r.segments {
					b = append(b, payloads[s]...)
				}
			}
			checked++
			switch r.kind {
			case "TLS":
				name, status, _ := ClientHelloSNI(b)
				wantStatus := Found
				if r.name == "" {
					wantStatus = NoName
				}
				if name != r.name || status != wantStatus {
					t.Errorf("%s frame %d: SNI %q %v, tshark %q", capture, frame, name, status, r.name)
				}
			case "HTTP":
				host, ok := HTTPHost(b)
				wantHost := strings.ToLower(string(stripPort([]byte(r.name))))
				if host != wantHost || ok != (r.name != "") {
					t.Errorf("%s frame %d: Host %q %v, tshark %q", capture, frame, host, ok, r.name)
				}
			}
		}
	}
	t.Logf("checked %d names against tshark", checked)
}
