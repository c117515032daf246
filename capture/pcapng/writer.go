package pcapng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/event"
)

// Writer writes one pcapng file. It is not safe for concurrent use.
//
// The section header must hold the window, known only at the end, so
// records go to path+".partial" first and Close writes the final file (a
// crash leaves the .partial file, itself a valid pcapng without the window).
// Records are flushed to the .partial file at least every FlushEvery, so
// after a SIGKILL it replays up to what was written then, not as empty.
type Writer struct {
	path      string
	tmp       *os.File
	ng        *pcapgo.NgWriter
	bodyStart int64 // offset of the first record after the header blocks
	synth     []byte
	closed    bool
	// flushEvery bounds how long a record stays in the writer's buffer.
	flushEvery time.Duration
	lastFlush  time.Time
}

// FlushEvery is how long a written record may wait in memory before it
// reaches the .partial file: what a killed egress can lose of a capture.
const FlushEvery = time.Second

var iface = pcapgo.NgInterface{
	Name:                "egress-watch",
	Description:         "packets captured in the watched process's network namespace (AF_PACKET) and kernel socket events (eBPF)",
	OS:                  runtime.GOOS,
	LinkType:            layers.LinkTypeLinuxSLL2,
	SnapLength:          0,
	TimestampResolution: 9,
}

func options(comment string) pcapgo.NgWriterOptions {
	return pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "egress watch",
		Comment:     comment,
	}}
}

// Create starts writing path.
func Create(path string) (*Writer, error) {
	tmp, err := os.Create(path + ".partial")
	if err != nil {
		return nil, fmt.Errorf("create pcapng file: %w", err)
	}
	ng, err := pcapgo.NewNgWriterInterface(tmp, iface, options(""))
	if err == nil {
		err = ng.Flush()
	}
	var off int64
	if err == nil {
		off, err = tmp.Seek(0, io.SeekCurrent)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("write pcapng header: %w", err)
	}
	return &Writer{path: path, tmp: tmp, ng: ng, bodyStart: off, flushEvery: FlushEvery, lastFlush: time.Now()}, nil
}

// flushed flushes the buffered records to the .partial file when the last
// flush is older than flushEvery.
func (w *Writer) flushed() error {
	if now := time.Now(); now.Sub(w.lastFlush) >= w.flushEvery {
		w.lastFlush = now
		if err := w.ng.Flush(); err != nil {
			return fmt.Errorf("flush pcapng records: %w", err)
		}
	}
	return nil
}

// WriteFrame writes one captured frame (a Linux cooked v2 header and the
// packet) taken at t (Unix ns), wireLen bytes long on the wire, sent or
// received by proc (nil when unknown).
func (w *Writer) WriteFrame(t int64, frame []byte, wireLen int, proc *event.Process) error {
	if wireLen < len(frame) {
		wireLen = len(frame)
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, t), CaptureLength: len(frame), Length: wireLen}
	var opts pcapgo.NgPacketOptions
	if proc != nil {
		opts.Comments = []string{comment.FormatProcessComment(proc)}
	}
	if err := w.ng.WritePacketWithOptions(ci, frame, opts); err != nil {
		return fmt.Errorf("write packet to pcapng: %w", err)
	}
	return w.flushed()
}

// WriteSock writes a kernel socket event as a synthesized TCP packet whose
// comment carries the event.
func (w *Writer) WriteSock(s *event.Sock) error {
	w.synth = synthesize(w.synth[:0], s)
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, s.Time), CaptureLength: len(w.synth), Length: len(w.synth)}
	opts := pcapgo.NgPacketOptions{Comments: []string{comment.FormatSockComment(s)}}
	if err := w.ng.WritePacketWithOptions(ci, w.synth, opts); err != nil {
		return fmt.Errorf("write socket event to pcapng: %w", err)
	}
	return w.flushed()
}

// WriteActivity writes a change of the scheduler view as an empty Linux
// cooked v2 frame whose comment carries it, so a replay of the file has
// the same view (and the same lost time) as the live run.
func (w *Writer) WriteActivity(a *event.Activity) error {
	// Protocol 0, reserved, ifindex 0, ARPHRD_NONE, outgoing, no address.
	w.synth = append(w.synth[:0], 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFE, packetOutgoing, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	return w.writeSynth(a.Time, comment.FormatActivityComment(a), "scheduler change")
}

// WriteDNS writes a DNS message relayed by egress run's proxy as a
// synthesized UDP datagram (the message its payload) whose comment carries
// the rest of the observation.
func (w *Writer) WriteDNS(d *event.DNS) error {
	src, dst := d.Client, d.Server
	if d.Response {
		src, dst = dst, src
	}
	w.synth = synthesizeUDP(w.synth[:0], src, dst, !d.Response, d.Msg)
	return w.writeSynth(d.Time, comment.FormatDNSComment(d), "DNS message")
}

// WriteBlocked writes a call the blocker refused as a synthesized SYN (or an
// empty datagram for UDP) whose comment carries the observation.
func (w *Writer) WriteBlocked(b *event.Blocked) error {
	src := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if b.Dst.Addr().Is6() && !b.Dst.Addr().Is4In6() {
		src = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	if b.Proto == event.ProtoUDP {
		w.synth = synthesizeUDP(w.synth[:0], src, b.Dst, true, nil)
	} else {
		w.synth = synthesize(w.synth[:0], &event.Sock{Kind: event.SockConnect, Src: src, Dst: b.Dst})
	}
	return w.writeSynth(b.Time, comment.FormatBlockedComment(b), "refused call")
}

func (w *Writer) writeSynth(t int64, cmt, what string) error {
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, t), CaptureLength: len(w.synth), Length: len(w.synth)}
	opts := pcapgo.NgPacketOptions{Comments: []string{cmt}}
	if err := w.ng.WritePacketWithOptions(ci, w.synth, opts); err != nil {
		return fmt.Errorf("write %s to pcapng: %w", what, err)
	}
	return nil
}

// Close finishes the file with info in its section header. It is safe to
// call more than once; only the first call writes.
func (w *Writer) Close(info comment.WatchInfo) error {
	if w.closed {
		return nil
	}
	w.closed = true
	defer os.Remove(w.tmp.Name())
	defer w.tmp.Close()
	if err := w.ng.Flush(); err != nil {
		return fmt.Errorf("write pcapng records: %w", err)
	}
	out, err := os.Create(w.path)
	if err != nil {
		return fmt.Errorf("create pcapng file: %w", err)
	}
	ng, err := pcapgo.NewNgWriterInterface(out, iface, options(comment.FormatWatchComment(info)))
	if err == nil {
		err = ng.Flush()
	}
	if err == nil {
		_, err = w.tmp.Seek(w.bodyStart, io.SeekStart)
	}
	if err == nil {
		_, err = io.Copy(out, w.tmp)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write pcapng file %s: %w", w.path, err)
	}
	return nil
}

// Abort removes what was written.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return errors.Join(w.tmp.Close(), os.Remove(w.tmp.Name()))
}

// Linux packet types (if_packet.h) for the cooked header.
const (
	packetHost     = 0
	packetOutgoing = 4
)

// synthesize appends a Linux cooked v2 frame holding the TCP segment that
// stands for s in Wireshark: the SYN for a connect or a retransmit, the
// peer's SYN-ACK when established, the peer's RST for a reset or refusal,
// and the socket's own RST when the kernel or the app gave up. Checksums are
// valid so Wireshark flags nothing but what happened.
func synthesize(b []byte, s *event.Sock) []byte {
	src, dst := s.Src, s.Dst
	var flags uint8
	pktType := byte(packetOutgoing)
	seq, ack := uint32(s.Cookie), uint32(0)
	switch s.Kind {
	case event.SockConnect, event.SockRetransmit:
		flags = event.TCPSyn
	case event.SockEstablished:
		src, dst, pktType = dst, src, packetHost
		flags, seq, ack = event.TCPSyn|event.TCPAck, 0, uint32(s.Cookie)+1
	case event.SockReset:
		src, dst, pktType = dst, src, packetHost
		flags, seq, ack = event.TCPRst|event.TCPAck, 0, uint32(s.Cookie)+1
	default: // error, close
		flags, seq = event.TCPRst, uint32(s.Cookie)+1
	}
	return frame(b, src, dst, pktType, event.ProtoTCP, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, seq)
		b = binary.BigEndian.AppendUint32(b, ack)
		b = append(b, 5<<4, flags)
		b = binary.BigEndian.AppendUint16(b, 64240)
		return append(b, 0, 0, 0, 0) // checksum, urgent pointer
	}, nil)
}

// maxPayload keeps a synthesized datagram within IPv4's 16-bit length.
const maxPayload = 65535 - 60 - 8

// synthesizeUDP appends a Linux cooked v2 frame holding a UDP datagram from
// src to dst carrying payload (cut at maxPayload), sent when out is true.
func synthesizeUDP(b []byte, src, dst netip.AddrPort, out bool, payload []byte) []byte {
	pktType := byte(packetHost)
	if out {
		pktType = packetOutgoing
	}
	payload = payload[:min(len(payload), maxPayload)]
	return frame(b, src, dst, pktType, event.ProtoUDP, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
		return append(b, 0, 0) // checksum
	}, payload)
}

// frame appends a Linux cooked v2 frame holding an IP packet from src to
// dst of protocol proto: the ports, then what header appends (the rest of
// the transport header), then payload. The IP and transport checksums are
// valid.
func frame(b []byte, src, dst netip.AddrPort, pktType byte, proto uint8, header func([]byte) []byte, payload []byte) []byte {
	v6 := src.Addr().Is6() && !src.Addr().Is4In6()
	ethType := uint16(0x0800)
	if v6 {
		ethType = 0x86DD
	}
	// Linux cooked v2: protocol, reserved, ifindex 0, ARPHRD_NONE, packet type, no address.
	b = binary.BigEndian.AppendUint16(b, ethType)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 0xFFFE)
	b = append(b, pktType, 0, 0, 0, 0, 0, 0, 0, 0, 0)

	ipStart := len(b)
	s4, d4 := as4(src.Addr()), as4(dst.Addr())
	s16, d16 := src.Addr().As16(), dst.Addr().As16()
	ipLen := 20
	if v6 {
		ipLen = 40
		b = append(b, 0x60, 0, 0, 0)
		b = append(b, 0, 0, proto, 64) // payload length set below
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	} else {
		b = append(b, 0x45, 0, 0, 0) // total length set below
		b = append(b, 0, 0, 0x40, 0, 64, proto, 0, 0)
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	}
	tStart := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = header(b)
	b = append(b, payload...)
	tLen := len(b) - tStart
	if v6 {
		binary.BigEndian.PutUint16(b[ipStart+4:], uint16(tLen))
	} else {
		binary.BigEndian.PutUint16(b[ipStart+2:], uint16(ipLen+tLen))
		binary.BigEndian.PutUint16(b[ipStart+10:], ^fold(sum(b[ipStart:ipStart+20], 0)))
	}
	// Pseudo-header checksum.
	var ps uint32
	if v6 {
		ps = sum(s16[:], ps)
		ps = sum(d16[:], ps)
	} else {
		ps = sum(s4[:], ps)
		ps = sum(d4[:], ps)
	}
	ps += uint32(proto) + uint32(tLen)
	ck := 16 // TCP checksum offset
	if proto == event.ProtoUDP {
		ck = 6
	}
	c := ^fold(sum(b[tStart:], ps))
	if c == 0 && proto == event.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[tStart+ck:], c)
	return b
}

// as4 is a's IPv4 form, 0.0.0.0 for an IPv6 or invalid address (the
// other family of a mismatched event: the comment still holds the truth).
func as4(a netip.Addr) [4]byte {
	if a = a.Unmap(); a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

func sum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
