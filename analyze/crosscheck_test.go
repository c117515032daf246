package analyze_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type flagCounts struct{ SYN, SYNACK, RST int }

// tsharkCounts dissects a capture with tshark and counts, per connection
// (client = the SYN sender), the client's SYNs, the server's SYN-ACKs and
// the RSTs either way. Frames holding ICMP are left out: the TCP header an
// ICMP error quotes is not a packet of the connection.
func tsharkCounts(t *testing.T, path string) map[string]flagCounts {
	t.Helper()
	cmd := exec.Command("tshark", "-n", "-r", path, "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport",
		"-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.reset")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", path, err, stderr.String())
	}
	type pkt struct {
		src, dst      string
		syn, ack, rst bool
	}
	var pkts []pkt
	clients := map[string]bool{} // "src>dst" of SYN senders
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 9 {
			continue
		}
		src := hostPort(f[0]+f[1], f[2])
		dst := hostPort(f[3]+f[4], f[5])
		p := pkt{src, dst, isSet(f[6]), isSet(f[7]), isSet(f[8])}
		pkts = append(pkts, p)
		if p.syn && !p.ack {
			clients[src+" > "+dst] = true
		}
	}
	counts := map[string]flagCounts{}
	for _, p := range pkts {
		key, fromClient := p.src+" > "+p.dst, true
		if !clients[key] {
			key, fromClient = p.dst+" > "+p.src, false
			if !clients[key] {
				continue
			}
		}
		c := counts[key]
		switch {
		case p.syn && !p.ack && fromClient:
			c.SYN++
		case p.syn && p.ack && !fromClient:
			c.SYNACK++
		}
		if p.rst {
			c.RST++
		}
		counts[key] = c
	}
	return counts
}

func isSet(s string) bool { return s == "1" || s == "True" }

func hostPort(ip, port string) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%s", ip, port)
	}
	return ip + ":" + port
}

// TestTsharkCrossCheck: for every capture in testdata/, the per-connection
// SYN, SYN-ACK and RST counts equal what tshark dissects.
func TestTsharkCrossCheck(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("EGRESS_PRIVILEGED_TESTS") == "1" {
			t.Fatal("tshark not found: .ci/run installs it (apt-get install tshark)")
		}
		t.Skip("tshark not found (apt-get install tshark): cannot cross-check the recorded captures")
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap*"))
	if len(files) == 0 {
		t.Fatal("no captures under testdata/captures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := tsharkCounts(t, f)
			r, err := replayFile(t, f)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]flagCounts{}
			for _, c := range r.Connections {
				key := c.Src().String() + " > " + c.Dst().String()
				g := got[key]
				g.SYN += c.Attempts
				g.SYNACK += c.SynAcks
				g.RST += c.RSTs
				got[key] = g
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("per-connection counts differ from tshark (-tshark +egress):\n%s", diff)
			}
		})
	}
}
