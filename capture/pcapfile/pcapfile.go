// Package pcapfile reads pcap and pcapng capture files (plain or gzip, or
// from stdin) and delivers each packet, decoded, as an event.Packet.
//
// Reading stops at the first unreadable record with an error that says
// where; everything read before it has already been delivered, so callers
// still get a partial report.
package pcapfile

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/event"
)

// Reader is one open capture file.
type Reader struct {
	name   string
	closer io.Closer
	size   int64        // bytes in the file, 0 when unknown (stdin)
	pos    atomic.Int64 // bytes consumed from the file, for progress
	format string

	pcap *classic
	ng   *pcapgo.NgReader
	link decode.LinkType
	dec  *decode.Decoder

	stats   event.Stats
	lastCmt string
	lastPrc *event.Process

	watch   comment.WatchInfo // from an egress watch file's section header
	watchOK bool
}

// Open opens the capture file name ("-" for stdin). Gzip-compressed files
// are recognised by their magic number.
func Open(name string) (*Reader, error) {
	var (
		f    *os.File
		size int64
	)
	if name == "-" {
		f = os.Stdin
	} else {
		var err error
		f, err = os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open capture: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	r, err := newReader(name, f, size)
	if err != nil {
		if name != "-" {
			f.Close()
		}
		return nil, err
	}
	if name != "-" {
		r.closer = f
	}
	return r, nil
}

// NewReader reads a capture from rd (plain or gzip); name is used in errors.
func NewReader(name string, rd io.Reader) (*Reader, error) {
	return newReader(name, rd, 0)
}

type countingReader struct {
	r   io.Reader
	pos *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pos.Add(int64(n))
	return n, err
}

func newReader(name string, rd io.Reader, size int64) (*Reader, error) {
	r := &Reader{name: name, size: size, dec: decode.NewDecoder(decode.Options{})}
	br := bufio.NewReaderSize(countingReader{rd, &r.pos}, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read capture header of %s: %w (is it empty?)", name, noEOF(err))
	}
	src := br
	compressed := ""
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip header of %s: %w", name, err)
		}
		zbr := bufio.NewReaderSize(zr, 1<<20)
		if magic, err = zbr.Peek(4); err != nil {
			return nil, fmt.Errorf("read capture header of %s (gzip): %w", name, noEOF(err))
		}
		src, compressed = zbr, "+gzip"
	}
	switch {
	case string(magic) == "\x0a\x0d\x0d\x0a":
		ng, err := pcapgo.NewNgReader(src, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("read pcapng header of %s: %w", name, err)
		}
		r.ng, r.format = ng, "pcapng"+compressed
		if r.watch, r.watchOK = comment.ParseWatchComment(ng.SectionInfo().Comment); r.watchOK {
			r.stats.Lost = r.watch.Lost
		}
	case isPcapMagic(magic):
		pr, err := newClassic(src)
		if err != nil {
			return nil, fmt.Errorf("read pcap header of %s: %w", name, err)
		}
		r.pcap, r.format, r.link = pr, "pcap"+compressed, decode.LinkType(pr.link)
	default:
		return nil, fmt.Errorf("%s is not a pcap or pcapng file (magic %x): convert it with `editcap -F pcapng`", name, magic)
	}
	return r, nil
}

func isPcapMagic(m []byte) bool {
	switch string(m) {
	case "\xd4\xc3\xb2\xa1", "\xa1\xb2\xc3\xd4", "\x4d\x3c\xb2\xa1", "\xa1\xb2\x3c\x4d":
		return true
	}
	return false
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Format says what kind of file this is ("pcap", "pcapng+gzip", ...).
func (r *Reader) Format() string { return r.format }

// Progress returns the bytes of the file consumed so far and its size (0
// when unknown).
func (r *Reader) Progress() (done, total int64) { return r.pos.Load(), r.size }

// Stats returns what the reader counted. Call it after Run returns.
func (r *Reader) Stats() event.Stats { return r.stats }

// Close closes the file.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Run reads every packet and hands it to sink as an *event.Packet; the
// records of files egress wrote come back as what they were (*event.Sock,
// *event.DNS, *event.Blocked). It returns nil at the end of the file,
// ctx.Err() when cancelled, or an error naming the packet where reading
// failed (packets before it were delivered). A Reader is a capture.Source.
func (r *Reader) Run(ctx context.Context, sink capture.Sink) error {
	var p event.Packet
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		data, ci, comments, dir, link, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: packet %d (file offset about %d): %w; the report covers the packets before it",
				r.name, r.stats.Packets+1, r.pos.Load(), err)
		}
		if len(comments) > 0 {
			// Socket events of egress watch files are not packets seen.
			if isEvent, err := r.egressEvent(sink, comments, ci.Timestamp, data, link); isEvent {
				if err != nil {
					r.stats.Packets++
					r.stats.Undecodable++
				}
				continue
			}
		}
		r.stats.Packets++
		r.stats.Bytes += uint64(ci.Length)
		// Decode resets every other field.
		p.Time, p.WireLen, p.Iface = ci.Timestamp, ci.Length, ci.InterfaceIndex
		if err := r.dec.Decode(link, data, &p); err != nil {
			// Counted, never silently dropped: the report's stats show them.
			// A fragment held for reassembly is neither: its datagram is
			// delivered when the last fragment arrives.
			if errors.Is(err, decode.ErrFragment) {
				continue
			}
			if errors.Is(err, decode.ErrTruncated) {
				r.stats.Truncated++
			} else {
				r.stats.Undecodable++
			}
			continue
		}
		if p.Dir == event.DirUnknown {
			p.Dir = dir
		}
		if len(comments) > 0 {
			p.Proc = r.process(comments)
		}
		sink.Observe(&p)
	}
}

func (r *Reader) next() (data []byte, ci captureInfo, comments []string, dir event.Direction, link decode.LinkType, err error) {
	if r.pcap != nil {
		d, ns, wire, err := r.pcap.next()
		return d, captureInfo{ns, wire, 0}, nil, event.DirUnknown, r.link, err
	}
	d, c, opts, err := r.ng.ZeroCopyReadPacketDataWithOptions()
	if err != nil {
		return nil, captureInfo{}, nil, 0, 0, err
	}
	ns := c.Timestamp.UnixNano()
	link = decode.LinkType(layers.LinkTypeEthernet)
	if len(c.AncillaryData) > 0 {
		if lt, ok := c.AncillaryData[0].(layers.LinkType); ok {
			link = decode.LinkType(lt)
		}
	}
	if opts.Flags != nil {
		switch opts.Flags.Direction {
		case pcapgo.NgEpbFlagDirectionInbound:
			dir = event.DirIn
		case pcapgo.NgEpbFlagDirectionOutbound:
			dir = event.DirOut
		}
	}
	return d, captureInfo{ns, c.Length, c.InterfaceIndex}, opts.Comments, dir, link, nil
}

// process reads the process behind a packet from its pcapng comments, as
// `egress watch --write` writes them ("egress: pid=123 comm=php-fpm"); the
// PID:/Command: lines of other tools are understood too.
func (r *Reader) process(comments []string) *event.Process {
	c := strings.Join(comments, "\n")
	if c == r.lastCmt {
		return r.lastPrc
	}
	r.lastCmt = c
	r.lastPrc = comment.ParseProcessComment(c)
	return r.lastPrc
}

type captureInfo struct {
	Timestamp      int64 // ns since the epoch
	Length         int
	InterfaceIndex int
}

// Watch returns what egress watch (or run) recorded about the run that
// wrote this file (ok false for other files). Replay uses From and To as its
// window so it reports what the live run did; Lost is already in Stats.
func (r *Reader) Watch() (w comment.WatchInfo, ok bool) { return r.watch, r.watchOK }

// egressEvent handles a packet whose comments mark an observation egress
// wrote (a socket event, a relayed DNS message, a refused call, a change of
// the scheduler view): it reports
// whether the packet was one (and so must not be decoded). A malformed
// comment is returned as an error for the caller to count.
func (r *Reader) egressEvent(sink capture.Sink, comments []string, t int64, data []byte, link decode.LinkType) (bool, error) {
	for _, c := range comments {
		switch {
		case comment.IsSockComment(c):
			s, err := comment.ParseSockComment(c)
			if err != nil {
				return true, err
			}
			s.Time = t
			sink.Observe(s)
			return true, nil
		case comment.IsDNSComment(c):
			d, err := comment.ParseDNSComment(c)
			if err != nil {
				return true, err
			}
			// The message is the synthesized datagram's payload.
			var p event.Packet
			if err := r.dec.Decode(link, data, &p); err != nil {
				return true, fmt.Errorf("decode relayed DNS message: %w", err)
			}
			d.Time, d.Msg = t, p.Payload
			sink.Observe(d)
			return true, nil
		case comment.IsBlockedComment(c):
			b, err := comment.ParseBlockedComment(c)
			if err != nil {
				return true, err
			}
			b.Time = t
			sink.Observe(b)
			return true, nil
		case comment.IsActivityComment(c):
			a, err := comment.ParseActivityComment(c)
			if err != nil {
				return true, err
			}
			a.Time = t
			sink.Observe(&a)
			return true, nil
		}
	}
	return false, nil
}

var _ capture.Source = (*Reader)(nil)
