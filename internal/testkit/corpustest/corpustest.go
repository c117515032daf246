// Package corpustest finds and reads the public capture corpus
// (../shared/corpus next to the repository, MANIFEST.md there) for tests.
// The captures are third-party files: tests read them in place and never
// copy them into the repository.
package corpustest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// Find returns the corpus folder: $EGRESS_CORPUS, else shared/corpus beside
// the repository that holds the working directory. ok is false when there is
// no MANIFEST.md there.
func Find() (dir string, ok bool) {
	dir = os.Getenv("EGRESS_CORPUS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", false
		}
		dir = filepath.Join(root, "..", "shared", "corpus")
	}
	_, err := os.Stat(filepath.Join(dir, "MANIFEST.md"))
	return dir, err == nil
}

// Dir returns the corpus folder, or skips t with a message saying where it
// looked. Where CI expects everything to run (EGRESS_PRIVILEGED_TESTS=1,
// set by .ci/run) a missing corpus fails t instead.
func Dir(t testing.TB) string {
	t.Helper()
	dir, ok := Find()
	if ok {
		return dir
	}
	msg := fmt.Sprintf("public capture corpus not found (looked at %q; set EGRESS_CORPUS to the folder holding its MANIFEST.md)", dir)
	if os.Getenv("EGRESS_PRIVILEGED_TESTS") == "1" {
		t.Fatal(msg + ": CI must run the corpus tests")
	}
	t.Skip(msg)
	return ""
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Frame is one captured frame.
type Frame struct {
	Num  int    // 1-based, as tshark numbers frames
	Link uint32 // pcap LINKTYPE_* of its interface
	Data []byte
	Time int64 // Unix nanoseconds
}

// Read returns every frame of a pcap or pcapng capture (each pcapng
// interface with its own link type). A read error fails t.
func Read(t testing.TB, path string) []Frame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var next func() ([]byte, uint32, int64, error)
	if strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		next = func() ([]byte, uint32, int64, error) {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				return nil, 0, 0, err
			}
			intf, err := r.Interface(ci.InterfaceIndex)
			return data, uint32(intf.LinkType), ci.Timestamp.UnixNano(), err
		}
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		next = func() ([]byte, uint32, int64, error) {
			data, ci, err := r.ReadPacketData()
			return data, uint32(r.LinkType()), ci.Timestamp.UnixNano(), err
		}
	}
	var frames []Frame
	for {
		data, link, ts, err := next()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		frames = append(frames, Frame{Num: len(frames) + 1, Link: link, Data: data, Time: ts})
	}
}
