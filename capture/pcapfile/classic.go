package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// classic reads the records of a classic pcap file straight out of the
// reader's buffer. pcapgo's reader copied each record header and each
// packet out of a bufio.Reader into its own buffer: on a 2 GB capture that
// was about a tenth of replay's CPU (docs/benchmarks.md). A record is
// returned as a slice of the buffer, valid until the next call, as
// pcapgo's ZeroCopyReadPacketData did. Its checks are pcapgo's: a record
// longer than the snap length (or 256 KiB, whichever is more) or than the
// packet it claims to hold is an error, and no length read from the file
// makes it allocate more than the bytes actually there.
type classic struct {
	br         *bufio.Reader
	order      binary.ByteOrder
	nanoFactor int64 // 1000 for microsecond files, 1 for nanosecond ones
	snaplen    uint32
	link       uint32
	big        []byte // a record longer than br's buffer
}

const (
	pcapHeaderLen = 24
	recordHeader  = 16
	// minMaxRecord is the longest record taken whatever the snap length
	// says: writers that do not truncate to the snap length they declare
	// exist (dpkt), and tcpdump and Wireshark read them up to 256 KiB.
	minMaxRecord = 262144
)

func newClassic(br *bufio.Reader) (*classic, error) {
	h, err := br.Peek(pcapHeaderLen)
	if err != nil {
		return nil, noEOF(err)
	}
	c := &classic{br: br}
	switch m := binary.LittleEndian.Uint32(h); m {
	case 0xa1b2c3d4:
		c.order, c.nanoFactor = binary.LittleEndian, 1000
	case 0xd4c3b2a1:
		c.order, c.nanoFactor = binary.BigEndian, 1000
	case 0xa1b23c4d:
		c.order, c.nanoFactor = binary.LittleEndian, 1
	case 0x4d3cb2a1:
		c.order, c.nanoFactor = binary.BigEndian, 1
	default:
		return nil, fmt.Errorf("unknown pcap magic %08x", m)
	}
	if major, minor := c.order.Uint16(h[4:]), c.order.Uint16(h[6:]); major != 2 || minor != 4 {
		return nil, fmt.Errorf("unknown pcap version %d.%d (want 2.4)", major, minor)
	}
	c.snaplen, c.link = c.order.Uint32(h[16:]), c.order.Uint32(h[20:])
	if _, err := br.Discard(pcapHeaderLen); err != nil {
		return nil, noEOF(err)
	}
	return c, nil
}

func (c *classic) maxRecord() uint32 { return max(c.snaplen, minMaxRecord) }

// next returns the next record's data, time (ns since the epoch) and the
// length of the packet on the wire. It returns io.EOF at a clean end of
// the file and io.ErrUnexpectedEOF for a record cut short.
func (c *classic) next() (data []byte, ns int64, wireLen int, err error) {
	h, err := c.br.Peek(recordHeader)
	if err != nil {
		if errors.Is(err, io.EOF) && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, 0, err
	}
	sec, frac := c.order.Uint32(h[0:]), c.order.Uint32(h[4:])
	incl, orig := c.order.Uint32(h[8:]), c.order.Uint32(h[12:])
	ns = int64(sec)*1e9 + int64(frac)*c.nanoFactor
	switch {
	case incl > c.maxRecord():
		return nil, 0, 0, fmt.Errorf("capture length exceeds snap length: %d > %d", incl, c.snaplen)
	case incl > orig:
		return nil, 0, 0, fmt.Errorf("capture length exceeds original packet length: %d > %d", incl, orig)
	}
	n := recordHeader + int(incl)
	if n <= c.br.Size() {
		rec, err := c.br.Peek(n)
		if err != nil {
			return nil, 0, 0, noEOF(err)
		}
		c.br.Discard(n) // Peek just returned the n bytes: cannot fail
		return rec[recordHeader:], ns, int(orig), nil
	}
	c.br.Discard(recordHeader)
	// Longer than the buffer: read it in pieces, growing with the bytes
	// actually there.
	c.big = c.big[:0]
	for rest := int(incl); rest > 0; {
		chunk := min(rest, c.br.Size())
		p, err := c.br.Peek(chunk)
		c.big = append(c.big, p...)
		c.br.Discard(len(p))
		if err != nil {
			return nil, 0, 0, noEOF(err)
		}
		rest -= chunk
	}
	return c.big, ns, int(orig), nil
}
