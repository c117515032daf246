package appproto

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/event"
	"github.com/gopacket/gopacket/pcapgo"
)

func corpusDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "corpus")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.md")); err != nil {
		t.Skipf("public capture corpus not found at %s (CI provides it; see its MANIFEST.md): %v", dir, err)
	}
	return dir
}

// tcpPayloads returns the TCP payload of every frame of a capture that has
// one, by 1-based frame number, decoded by package decode.
func tcpPayloads(t testing.TB, path string) map[int][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int][]byte{}
	d := decode.NewDecoder(decode.Options{})
	add := func(n int, link decode.LinkType, data []byte) {
		var p event.Packet
		if err := d.Decode(link, data, &p); err == nil && p.Proto == event.ProtoTCP && len(p.Payload) > 0 {
			out[n] = append([]byte(nil), p.Payload...)
		}
	}
	var next func() ([]byte, decode.LinkType, error)
	if strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		next = func() ([]byte, decode.LinkType, error) {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				return nil, 0, err
			}
			intf, err := r.Interface(ci.InterfaceIndex)
			return data, decode.LinkType(intf.LinkType), err
		}
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		next = func() ([]byte, decode.LinkType, error) {
			data, _, err := r.ReadPacketData()
			return data, decode.LinkType(r.LinkType()), err
		}
	}
	for n := 1; ; n++ {
		data, link, err := next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		add(n, link, data)
	}
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
