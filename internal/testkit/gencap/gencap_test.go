package gencap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// small is a capture that holds every outcome several times.
var small = Config{
	TargetBytes: 2e6,
	Seed:        7,
	Flows:       64,
	Clients:     16,
	DropShare:   0.08,
	RefuseShare: 0.08,
	RejectShare: 0.08,
	IPv6Share:   0.3,
}

func generate(t *testing.T, cfg Config) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Write(&buf, cfg)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if st.Bytes != uint64(buf.Len()) {
		t.Fatalf("Stats.Bytes = %d, wrote %d", st.Bytes, buf.Len())
	}
	return buf.Bytes(), st
}

func hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestDeterministic(t *testing.T) {
	for _, nano := range []bool{false, true} {
		cfg := small
		cfg.Nanosecond = nano
		a, sa := generate(t, cfg)
		b, sb := generate(t, cfg)
		if hash(a) != hash(b) {
			t.Errorf("nano=%v: two runs differ", nano)
		}
		if diff := cmp.Diff(sa, sb); diff != "" {
			t.Errorf("nano=%v: stats differ (-first +second):\n%s", nano, diff)
		}
		cfg.Seed++
		c, _ := generate(t, cfg)
		if hash(a) == hash(c) {
			t.Errorf("nano=%v: seeds %d and %d give the same file", nano, cfg.Seed-1, cfg.Seed)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no target", Config{}, "TargetBytes or TargetPackets"},
		{"mean too small", Config{TargetPackets: 1, MeanPacketSize: 60}, "MeanPacketSize"},
		{"dns share", Config{TargetPackets: 1, DNSShare: 0.95}, "DNSShare"},
		{"outcome shares", Config{TargetPackets: 1, DropShare: 0.5, RefuseShare: 0.6}, "DropShare+RefuseShare+RejectShare"},
		{"ports", Config{TargetPackets: 1, Flows: 1 << 20, Clients: 16}, "too few ports"},
	}
	for _, tt := range tests {
		_, err := Write(io.Discard, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	_, err := Write(&failWriter{n: 3 << 20}, Config{TargetBytes: 10e6, Seed: 1})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the writer's error", err)
	}
}

func TestHTTPSplit(t *testing.T) {
	for total := 120; total < 200000; total++ {
		body, pad := httpSplit(total)
		h := httpHeader(nil, body, pad)
		if len(h)+body != total {
			t.Fatalf("total %d: header %d + body %d", total, len(h), body)
		}
	}
}

// counts are the facts a decoder can count in a capture, to compare with
// Stats.
type counts struct {
	SYNs, SYNACKs, RSTs, ICMPs    uint64
	Queries, Responses, NXDomain  uint64
	ServFail, AnsweredWithAddress uint64
	NoDataCNAME                   uint64
}

func expected(st Stats) counts {
	return counts{
		SYNs: st.TCP.SYNs, SYNACKs: st.TCP.SYNACKs, RSTs: st.TCP.RSTs, ICMPs: st.TCP.ICMPs,
		Queries: st.DNS.Queries, Responses: st.DNS.Responses, NXDomain: st.DNS.NXDomain,
		ServFail: st.DNS.ServFail, AnsweredWithAddress: st.DNS.NoError,
		NoDataCNAME: st.DNS.NoDataCNAME,
	}
}

// TestDecode reads the capture back with gopacket: every frame decodes,
// lengths agree, time never goes back, and the counts match Stats.
func TestDecode(t *testing.T) {
	data, st := generate(t, small)
	if st.TCP.Timeout == 0 || st.TCP.Refused == 0 || st.TCP.Rejected == 0 || st.TCP.Established == 0 ||
		st.DNS.NXDomain == 0 || st.DNS.Timeout == 0 || st.DNS.NoData == 0 || st.TCP.IPv6 == 0 {
		t.Fatalf("small capture lacks an outcome: %+v", st)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading pcap header: %v", err)
	}
	var got counts
	var packets, wire uint64
	var last int64
	tuples := map[[2]netip.AddrPort]bool{}
	names := map[string]bool{}
	for {
		raw, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", packets+1, err)
		}
		packets++
		wire += uint64(ci.Length)
		if ts := ci.Timestamp.UnixNano(); ts < last {
			t.Fatalf("packet %d: time goes back", packets)
		} else {
			last = ts
		}
		p := gopacket.NewPacket(raw, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("packet %d: %v", packets, el.Error())
		}
		var src, dst netip.Addr
		switch ip := p.NetworkLayer().(type) {
		case *layers.IPv4:
			if int(ip.Length) != len(raw)-ethLen {
				t.Fatalf("packet %d: IPv4 length %d in a %d-byte frame", packets, ip.Length, len(raw))
			}
			src, _ = netip.AddrFromSlice(ip.SrcIP)
			dst, _ = netip.AddrFromSlice(ip.DstIP)
		case *layers.IPv6:
			if int(ip.Length) != len(raw)-ethLen-ip6Len {
				t.Fatalf("packet %d: IPv6 length %d in a %d-byte frame", packets, ip.Length, len(raw))
			}
			src, _ = netip.AddrFromSlice(ip.SrcIP)
			dst, _ = netip.AddrFromSlice(ip.DstIP)
		default:
			t.Fatalf("packet %d: no IP layer", packets)
		}
		if icmp := p.Layer(layers.LayerTypeICMPv4); icmp != nil {
			if c := icmp.(*layers.ICMPv4).TypeCode; c.Type() == layers.ICMPv4TypeDestinationUnreachable {
				got.ICMPs++
			}
			continue // the quoted SYN is not a SYN on the wire
		}
		if icmp := p.Layer(layers.LayerTypeICMPv6); icmp != nil {
			if c := icmp.(*layers.ICMPv6).TypeCode; c.Type() == layers.ICMPv6TypeDestinationUnreachable {
				got.ICMPs++
			}
			continue
		}
		if tcp, ok := p.TransportLayer().(*layers.TCP); ok {
			switch {
			case tcp.SYN && !tcp.ACK:
				got.SYNs++
				tuples[[2]netip.AddrPort{netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))}] = true
			case tcp.SYN && tcp.ACK:
				got.SYNACKs++
			case tcp.RST:
				got.RSTs++
			}
		}
		if udp, ok := p.TransportLayer().(*layers.UDP); ok && int(udp.Length) != len(udp.Contents)+len(udp.Payload) {
			t.Fatalf("packet %d: UDP length %d, have %d bytes", packets, udp.Length, len(udp.Contents)+len(udp.Payload))
		}
		if l := p.Layer(layers.LayerTypeDNS); l != nil {
			d := l.(*layers.DNS)
			names[string(d.Questions[0].Name)] = true
			if !d.QR {
				got.Queries++
				continue
			}
			got.Responses++
			switch {
			case d.ResponseCode == layers.DNSResponseCodeNXDomain:
				got.NXDomain++
			case d.ResponseCode == layers.DNSResponseCodeServFail:
				got.ServFail++
			case len(d.Answers) > 0 && d.Answers[len(d.Answers)-1].IP != nil:
				got.AnsweredWithAddress++
			case len(d.Answers) > 0 && d.Answers[0].Type == layers.DNSTypeCNAME:
				got.NoDataCNAME++
			}
		}
	}
	if packets != st.Packets || wire != st.WireBytes {
		t.Errorf("read %d packets, %d bytes; Stats say %d, %d", packets, wire, st.Packets, st.WireBytes)
	}
	if diff := cmp.Diff(expected(st), got); diff != "" {
		t.Errorf("counts differ from Stats (-stats +decoded):\n%s", diff)
	}
	if st.TCP.TimeoutAfterEnd > st.TCP.Timeout || st.DNS.TimeoutAfterEnd > st.DNS.Timeout || st.DNS.NoDataCNAME == 0 {
		t.Errorf("inconsistent stats: %+v", st)
	}
	if uint64(len(tuples)) != st.TCP.Attempts {
		t.Errorf("%d distinct SYN 4-tuples, want one per attempt (%d)", len(tuples), st.TCP.Attempts)
	}
	if len(names) > small.Names && small.Names > 0 || len(names) > DefaultNames {
		t.Errorf("%d distinct query names, more than the pool", len(names))
	}
	if share := float64(st.DNS.Packets) / float64(st.Packets); share < 0.15 || share > 0.25 {
		t.Errorf("DNS share %.3f, want about %.2f", share, DefaultDNSShare)
	}
	if mean := float64(st.WireBytes) / float64(st.Packets); mean < 450 || mean > 550 {
		t.Errorf("mean frame %.0f bytes, want about %d", mean, DefaultMeanPacketSize)
	}
}

// TestTshark checks that tshark decodes every frame without complaint,
// with valid checksums, and sees the outcomes Stats promise.
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark); CI installs it")
	}
	data, st := generate(t, small)
	path := filepath.Join(t.TempDir(), "small.pcap")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), tshark, append([]string{"-r", path,
			"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
			"-o", "udp.check_checksum:TRUE"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}

	bad := run("-Y", "_ws.malformed || _ws.expert.severity >= error || tcp.checksum.status == 0 || "+
		"udp.checksum.status == 0 || ip.checksum.status == 0 || icmp.checksum.status == 0 || icmpv6.checksum.status == 0")
	if bad != "" {
		t.Errorf("tshark flags frames:\n%s", firstLines(bad, 10))
	}

	var got counts
	fields := run("-T", "fields", "-E", "occurrence=f", "-E", "separator=,",
		"-e", "tcp.flags", "-e", "icmp.type", "-e", "icmpv6.type", "-e", "dns.flags.response",
		"-e", "dns.flags.rcode", "-e", "dns.a", "-e", "dns.aaaa", "-e", "dns.cname")
	for line := range strings.Lines(fields) {
		f := strings.Split(strings.TrimRight(line, "\n"), ",")
		tcpFlags, icmp4, icmp6, resp, rcode, a, aaaa, cname := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
		switch {
		case icmp4 == "3" || icmp6 == "1":
			got.ICMPs++
		case icmp4 != "" || icmp6 != "":
		case tcpFlags != "":
			v, err := strconv.ParseUint(tcpFlags, 0, 16)
			if err != nil {
				t.Fatalf("tcp.flags %q: %v", tcpFlags, err)
			}
			switch {
			case v&0x12 == 0x02:
				got.SYNs++
			case v&0x12 == 0x12:
				got.SYNACKs++
			case v&0x04 != 0:
				got.RSTs++
			}
		case resp == "False" || resp == "0":
			got.Queries++
		case resp == "True" || resp == "1":
			got.Responses++
			switch rcode {
			case "3":
				got.NXDomain++
			case "2":
				got.ServFail++
			case "0":
				switch {
				case a != "" || aaaa != "":
					got.AnsweredWithAddress++
				case cname != "":
					got.NoDataCNAME++
				}
			}
		}
	}
	if diff := cmp.Diff(expected(st), got); diff != "" {
		t.Errorf("tshark's counts differ from Stats (-stats +tshark):\n%s", diff)
	}

	conv := run("-q", "-z", "conv,tcp")
	var convs uint64
	for line := range strings.Lines(conv) {
		if strings.Contains(line, "<->") {
			convs++
		}
	}
	if convs != st.TCP.Attempts {
		t.Errorf("tshark sees %d TCP conversations, Stats %d attempts", convs, st.TCP.Attempts)
	}

	names := run("-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "tls.handshake.extensions_server_name")
	hosts := run("-Y", "http.request", "-T", "fields", "-e", "http.host")
	if n := uint64(strings.Count(names, ".example\n")); n < st.TCP.TLS {
		t.Errorf("tshark sees %d ClientHellos with SNI, want at least %d", n, st.TCP.TLS)
	}
	if n := uint64(strings.Count(hosts, ".example\n")); n < st.TCP.HTTP {
		t.Errorf("tshark sees %d HTTP requests with Host, want at least %d", n, st.TCP.HTTP)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfterN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}

// BenchmarkWrite measures generation speed without the disk.
func BenchmarkWrite(b *testing.B) {
	for b.Loop() {
		st, err := Write(io.Discard, Config{TargetBytes: 100e6, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(st.Bytes))
	}
}

// TestWindowTruth: a window that covers the whole capture counts every
// call, and windows that split it add up to it.
func TestWindowTruth(t *testing.T) {
	cfg := small
	cfg.InboundShare, cfg.ScanShare = 0.2, 0.5
	cfg.Windows = []Window{{0, time.Hour}, {0, 2 * time.Second}, {2*time.Second + time.Microsecond, time.Hour}}
	_, st := generate(t, cfg)
	whole := st.Windows[0]
	wantConns := map[string]uint64{"established": st.TCP.Established, "refused": st.TCP.Refused, "rejected": st.TCP.Rejected, "timeout": st.TCP.Timeout}
	if diff := cmp.Diff(wantConns, whole.Connections); diff != "" {
		t.Errorf("whole-capture window's connections differ from Stats (-stats +window):\n%s", diff)
	}
	var lookups uint64
	for _, n := range whole.Lookups {
		lookups += n
	}
	if lookups != st.DNS.Lookups || whole.Inbound != st.Inbound.Attempts || st.Inbound.Scans == 0 || st.Inbound.Established == 0 {
		t.Errorf("window counts %d lookups and %d inbound, Stats %d and %+v", lookups, whole.Inbound, st.DNS.Lookups, st.Inbound)
	}
	for k, n := range whole.Connections {
		if got := st.Windows[1].Connections[k] + st.Windows[2].Connections[k]; got != n {
			t.Errorf("%s: the two halves count %d, the whole %d", k, got, n)
		}
	}
}
