package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/internal/testkit/gencap"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "2GB", want: 2e9},
		{in: "0.5GB", want: 5e8},
		{in: "500MB", want: 5e8},
		{in: "1GiB", want: 1 << 30},
		{in: "64KiB", want: 64 << 10},
		{in: "12345", want: 12345},
		{in: "3 MB", want: 3e6},
		{in: "", bad: true},
		{in: "GB", bad: true},
		{in: "-1GB", bad: true},
		{in: "2XB", bad: true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcap")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-o", path, "-size", "1MB", "-seed", "3", "-flows", "32", "-dns", "0.1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var st gencap.Stats
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatalf("stats are not JSON: %v\n%s", err, stdout.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(fi.Size()) != st.Bytes || st.Flows != 32 || st.Packets == 0 {
		t.Errorf("file has %d bytes; stats %+v", fi.Size(), st)
	}
	if share := float64(st.DNS.Packets) / float64(st.Packets); share < 0.07 || share > 0.13 {
		t.Errorf("DNS share %.3f with -dns 0.1", share)
	}

	// The library called directly with the same settings writes the same stats.
	want, err := gencap.Write(&bytes.Buffer{}, gencap.Config{TargetBytes: 1e6, Seed: 3, Flows: 32, DNSShare: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("CLI stats differ from the library's (-library +cli):\n%s", diff)
	}

	// -dns 0 turns DNS off.
	stdout.Reset()
	if code := run(t.Context(), []string{"-o", path, "-packets", "2000", "-flows", "16", "-dns", "0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.DNS.Packets != 0 {
		t.Errorf("-dns 0 wrote %d DNS packets", st.DNS.Packets)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-size", "1MB"},
		{"-o", "x.pcap"},
		{"-o", "x.pcap", "-size", "lots"},
		{"-o", "x.pcap", "-size", "1MB", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "usage") && !strings.Contains(stderr.String(), "bad size") {
			t.Errorf("%q: stderr lacks a hint:\n%s", args, stderr.String())
		}
	}
}

// TestRunBusy: the many-host flags reach the generator, and -windows gives
// the truth of each window.
func TestRunBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.pcap")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-o", path, "-packets", "20000", "-flows", "50", "-clients", "400", "-pps", "1000",
		"-inbound", "0.2", "-scans", "0.5", "-drop", "0.05", "-windows", "0s-5s,5s-1h"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var st gencap.Stats
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Inbound.Scans == 0 || st.Inbound.Established == 0 || len(st.Windows) != 2 {
		t.Fatalf("stats %+v: want inbound sessions, scans and two windows", st)
	}
	if got := st.Windows[0].Connections["timeout"] + st.Windows[1].Connections["timeout"]; got != st.TCP.Timeout {
		t.Errorf("the windows count %d timeouts, the whole capture %d", got, st.TCP.Timeout)
	}
	for _, bad := range []string{"5s", "5s-1s", "x-1s"} {
		if code := run(t.Context(), []string{"-o", path, "-packets", "10", "-windows", bad}, &stdout, &stderr); code != 2 {
			t.Errorf("-windows %q: exit %d, want 2", bad, code)
		}
	}
}
