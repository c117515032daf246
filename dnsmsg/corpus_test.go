package dnsmsg

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
	"github.com/google/go-cmp/cmp"
)

func corpusDir(t testing.TB) string { return corpustest.Dir(t) }

// udpPayloads returns, by 1-based frame number, the UDP payload of every
// frame of a capture (decoded by package decode, fragments reassembled).
func udpPayloads(t testing.TB, path string) map[int][]byte {
	t.Helper()
	out := map[int][]byte{}
	d := decode.NewDecoder(decode.Options{})
	for _, f := range corpustest.Read(t, path) {
		var p event.Packet
		if err := d.Decode(decode.LinkType(f.Link), f.Data, &p); err == nil && p.Proto == event.ProtoUDP {
			out[f.Num] = append([]byte(nil), p.Payload...)
		}
	}
	return out
}

// typeName is a record type in a truth file: a mnemonic, or a number for
// types truth.py does not name.
type typeName string

func (t *typeName) UnmarshalJSON(b []byte) error {
	var n uint16
	if err := json.Unmarshal(b, &n); err == nil {
		*t = typeName(TypeString(n))
		return nil
	}
	return json.Unmarshal(b, (*string)(t))
}

type truthAnswer struct {
	Name string   `json:"name"`
	Type typeName `json:"type"`
	TTL  uint32   `json:"ttl"`
	Data any      `json:"data"` // a string for A, AAAA and CNAME; other types vary
}

type truthFile struct {
	DNS []struct {
		QName       string   `json:"qname"`
		QType       typeName `json:"qtype"`
		Transport   string   `json:"transport"`
		QueryFrames []int    `json:"query_frames"`
		Responses   []struct {
			Frame     int           `json:"frame"`
			Rcode     uint8         `json:"rcode"`
			Truncated bool          `json:"truncated"`
			Answers   []truthAnswer `json:"answers"`
		} `json:"responses"`
	} `json:"dns"`
}

// plainName reports whether tshark prints name the way Msg does (tshark
// escapes odd bytes differently, so those names are compared elsewhere).
func plainName(name string) bool {
	for _, c := range []byte(strings.ToLower(name)) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

func answerView(m *Msg) []truthAnswer {
	var out []truthAnswer
	for _, rr := range m.Answers {
		a := truthAnswer{Name: string(rr.Name), Type: typeName(TypeString(rr.Type)), TTL: rr.TTL}
		switch {
		case rr.Addr.IsValid():
			a.Data = rr.Addr.String()
		case rr.Type == TypeCNAME:
			a.Data = string(rr.Target)
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// TestCorpusMessages parses every UDP DNS query and response of the public
// corpus and compares them with tshark's reading in the truth files.
func TestCorpusMessages(t *testing.T) {
	dir := corpusDir(t)
	truths, err := filepath.Glob(filepath.Join(dir, "*.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Msg
	queries, responses, skipped := 0, 0, 0
	for _, tf := range truths {
		raw, err := os.ReadFile(tf)
		if err != nil {
			t.Fatal(err)
		}
		var truth truthFile
		if err := json.Unmarshal(raw, &truth); err != nil {
			t.Fatal(err)
		}
		if len(truth.DNS) == 0 {
			continue
		}
		capture := strings.TrimSuffix(tf, ".truth.json")
		name := filepath.Base(capture)
		payloads := udpPayloads(t, capture)
		for _, q := range truth.DNS {
			if q.Transport != "udp" {
				continue
			}
			if !plainName(q.QName) {
				skipped++
				continue
			}
			wantQ := strings.ToLower(q.QName)
			if wantQ == "<root>" || wantQ == "" {
				wantQ = "."
			}
			for _, fr := range q.QueryFrames {
				b, ok := payloads[fr]
				if !ok {
					t.Errorf("%s frame %d: no UDP payload decoded", name, fr)
					continue
				}
				if err := m.Unpack(b); err != nil {
					t.Errorf("%s frame %d: %v", name, fr, err)
					continue
				}
				queries++
				if string(m.QName) != wantQ || typeName(TypeString(m.QType)) != q.QType || m.Response {
					t.Errorf("%s frame %d: got %q %s response=%v, tshark %q %s", name, fr, m.QName, TypeString(m.QType), m.Response, wantQ, q.QType)
				}
			}
			for _, r := range q.Responses {
				b, ok := payloads[r.Frame]
				if !ok {
					t.Errorf("%s frame %d: no UDP payload decoded", name, r.Frame)
					continue
				}
				if err := m.Unpack(b); err != nil {
					t.Errorf("%s frame %d: %v", name, r.Frame, err)
					continue
				}
				responses++
				var want []truthAnswer
				for _, a := range r.Answers {
					if a.Type != "A" && a.Type != "AAAA" && a.Type != "CNAME" {
						continue
					}
					a.Name, a.Data = strings.ToLower(a.Name), strings.ToLower(a.Data.(string))
					want = append(want, a)
				}
				if m.Rcode != r.Rcode || m.Truncated != r.Truncated || !m.Response {
					t.Errorf("%s frame %d: rcode %d tc %v, tshark rcode %d tc %v", name, r.Frame, m.Rcode, m.Truncated, r.Rcode, r.Truncated)
				}
				if diff := cmp.Diff(want, answerView(&m)); diff != "" {
					t.Errorf("%s frame %d answers (-tshark +got):\n%s", name, r.Frame, diff)
				}
			}
		}
	}
	t.Logf("compared %d queries and %d responses with tshark; %d queries with unusual names left to the table test", queries, responses, skipped)
	if queries < 100 || responses < 100 {
		t.Errorf("compared only %d queries and %d responses: the corpus reading is broken", queries, responses)
	}
}
