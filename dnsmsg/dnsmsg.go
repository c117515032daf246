package dnsmsg

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Record types the analyzer looks at.
const (
	TypeA     uint16 = 1
	TypeNS    uint16 = 2
	TypeCNAME uint16 = 5
	TypeSOA   uint16 = 6
	TypePTR   uint16 = 12
	TypeMX    uint16 = 15
	TypeTXT   uint16 = 16
	TypeAAAA  uint16 = 28
	TypeSRV   uint16 = 33
	TypeDNAME uint16 = 39
	TypeOPT   uint16 = 41
	TypeSVCB  uint16 = 64
	TypeHTTPS uint16 = 65
	TypeANY   uint16 = 255
)

// Bounds that keep a hostile message cheap.
const (
	maxNameWire = 255 // RFC 1035 limit on a name's wire length
	maxPointers = 64  // compression pointers followed in one name
	maxAnswers  = 256 // answer records kept; more are parsed past but dropped
)

// Errors returned by Unpack. Fields parsed before the error stay set.
var (
	ErrShort     = errors.New("dns message: truncated")
	ErrNameLoop  = errors.New("dns message: name compression loop")
	ErrNameLong  = errors.New("dns message: name longer than 255 bytes")
	ErrLabelType = errors.New("dns message: reserved label type")
	ErrRData     = errors.New("dns message: bad record data length")
)

// RR is one resource record of the answer section.
type RR struct {
	Name   []byte // owner name, presentation form
	Type   uint16
	Class  uint16
	TTL    uint32
	Addr   netip.Addr // A and AAAA records; invalid otherwise
	Target []byte     // CNAME and DNAME target, presentation form; nil otherwise
}

// Msg is a parsed DNS message. Name slices (QName, RR.Name, RR.Target)
// point into the Msg's own buffer and are valid until the next Unpack.
type Msg struct {
	ID                 uint16
	Response           bool
	Opcode             uint8
	Authoritative      bool
	Truncated          bool
	RecursionDesired   bool
	RecursionAvailable bool
	Rcode              uint8 // the header's 4-bit rcode (EDNS extensions ignored)

	QDCount, ANCount, NSCount, ARCount uint16

	// The first question; valid when QuestionOK reports true.
	QName          []byte
	QType, QClass  uint16
	Answers        []RR // answer records, at most maxAnswers
	AnswersDropped int  // answer records beyond maxAnswers, parsed but not kept

	headerOK, questionOK bool
	names                []byte // backing store of every name above
}

// HeaderOK reports whether the last Unpack read the 12-byte header, so
// ID, flags and counts are valid even if it returned an error.
func (m *Msg) HeaderOK() bool { return m.headerOK }

// QuestionOK reports whether the last Unpack read the first question.
func (m *Msg) QuestionOK() bool { return m.questionOK }

// Unpack parses b into m, reusing m's memory. It parses the header, the
// questions and the answer section; the authority and additional sections
// are not read. On error the fields parsed before it stay set (see
// HeaderOK and QuestionOK) and Answers holds the records read so far.
func (m *Msg) Unpack(b []byte) error {
	*m = Msg{Answers: m.Answers[:0], names: m.names[:0]}
	if len(b) < 12 {
		return ErrShort
	}
	m.ID = binary.BigEndian.Uint16(b)
	f1, f2 := b[2], b[3]
	m.Response = f1&0x80 != 0
	m.Opcode = (f1 >> 3) & 0x0f
	m.Authoritative = f1&0x04 != 0
	m.Truncated = f1&0x02 != 0
	m.RecursionDesired = f1&0x01 != 0
	m.RecursionAvailable = f2&0x80 != 0
	m.Rcode = f2 & 0x0f
	m.QDCount = binary.BigEndian.Uint16(b[4:])
	m.ANCount = binary.BigEndian.Uint16(b[6:])
	m.NSCount = binary.BigEndian.Uint16(b[8:])
	m.ARCount = binary.BigEndian.Uint16(b[10:])
	m.headerOK = true

	off := 12
	for i := 0; i < int(m.QDCount); i++ {
		start := len(m.names)
		end, err := m.name(b, off)
		if err != nil {
			return err
		}
		if end+4 > len(b) {
			return ErrShort
		}
		if i == 0 {
			m.QName = m.names[start:len(m.names):len(m.names)]
			m.QType = binary.BigEndian.Uint16(b[end:])
			m.QClass = binary.BigEndian.Uint16(b[end+2:])
			m.questionOK = true
		} else {
			m.names = m.names[:start] // only the first question is kept
		}
		off = end + 4
	}
	for i := 0; i < int(m.ANCount); i++ {
		start := len(m.names)
		end, err := m.name(b, off)
		if err != nil {
			return err
		}
		if end+10 > len(b) {
			return ErrShort
		}
		rr := RR{
			Type:  binary.BigEndian.Uint16(b[end:]),
			Class: binary.BigEndian.Uint16(b[end+2:]),
			TTL:   binary.BigEndian.Uint32(b[end+4:]),
		}
		rdlen := int(binary.BigEndian.Uint16(b[end+8:]))
		rdata := end + 10
		if rdata+rdlen > len(b) {
			return ErrShort
		}
		off = rdata + rdlen
		if len(m.Answers) >= maxAnswers {
			m.names = m.names[:start]
			m.AnswersDropped++
			continue
		}
		rr.Name = m.names[start:len(m.names):len(m.names)]
		switch rr.Type {
		case TypeA:
			if rdlen != 4 {
				return ErrRData
			}
			rr.Addr = netip.AddrFrom4([4]byte(b[rdata:]))
		case TypeAAAA:
			if rdlen != 16 {
				return ErrRData
			}
			rr.Addr = netip.AddrFrom16([16]byte(b[rdata:]))
		case TypeCNAME, TypeDNAME:
			tstart := len(m.names)
			tend, err := m.name(b[:rdata+rdlen], rdata)
			if err != nil {
				return err
			}
			if tend != rdata+rdlen {
				return ErrRData
			}
			rr.Target = m.names[tstart:len(m.names):len(m.names)]
		}
		m.Answers = append(m.Answers, rr)
	}
	return nil
}

// name reads the (possibly compressed) name at off, appends its
// presentation form to m.names and returns the offset just after the name
// in place. Each pointer must point before itself and before the previous
// pointer's target, so targets strictly decrease and no loop is possible.
func (m *Msg) name(b []byte, off int) (int, error) {
	start := len(m.names)
	end := -1 // offset after the name where it sits, set at the first pointer
	wire := 0
	limit := len(b) // each pointer must go below itself and below the previous target
	for hops := 0; ; {
		if off >= len(b) {
			return 0, ErrShort
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if len(m.names) == start {
					m.names = append(m.names, '.')
				}
				if end < 0 {
					end = off + 1
				}
				return end, nil
			}
			if off+1+c > len(b) {
				return 0, ErrShort
			}
			wire += 1 + c
			if wire+1 > maxNameWire {
				return 0, ErrNameLong
			}
			if len(m.names) > start {
				m.names = append(m.names, '.')
			}
			m.names = appendLabel(m.names, b[off+1:off+1+c])
			off += 1 + c
		case 0xc0:
			if off+2 > len(b) {
				return 0, ErrShort
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if end < 0 {
				end = off + 2
			}
			hops++
			if ptr >= min(limit, off) || hops > maxPointers {
				return 0, ErrNameLoop
			}
			off, limit = ptr, ptr
		default: // 0x40 extended and 0x80 reserved label types
			return 0, ErrLabelType
		}
	}
}

// appendLabel appends a label in the safe presentation form.
func appendLabel(dst, label []byte) []byte {
	for _, c := range label {
		switch {
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+('a'-'A'))
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '*':
			dst = append(dst, c)
		default:
			dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		}
	}
	return dst
}

// SplitTCP splits the first message off a DNS-over-TCP stream, where each
// message is preceded by its 2-byte length. It reports false, returning
// stream as rest, when the stream does not yet hold a whole message.
func SplitTCP(stream []byte) (msg, rest []byte, ok bool) {
	if len(stream) < 2 {
		return nil, stream, false
	}
	n := int(binary.BigEndian.Uint16(stream))
	if len(stream) < 2+n {
		return nil, stream, false
	}
	return stream[2 : 2+n], stream[2+n:], true
}

// TypeString returns the mnemonic of a record type ("A", "AAAA"), or
// "TYPE" and the number for the ones it does not name (RFC 3597).
func TypeString(t uint16) string {
	switch t {
	case TypeA:
		return "A"
	case TypeNS:
		return "NS"
	case TypeCNAME:
		return "CNAME"
	case TypeSOA:
		return "SOA"
	case TypePTR:
		return "PTR"
	case TypeMX:
		return "MX"
	case TypeTXT:
		return "TXT"
	case TypeAAAA:
		return "AAAA"
	case TypeSRV:
		return "SRV"
	case TypeDNAME:
		return "DNAME"
	case TypeOPT:
		return "OPT"
	case TypeSVCB:
		return "SVCB"
	case TypeHTTPS:
		return "HTTPS"
	case TypeANY:
		return "ANY"
	case 35:
		return "NAPTR"
	case 43:
		return "DS"
	case 46:
		return "RRSIG"
	case 47:
		return "NSEC"
	case 48:
		return "DNSKEY"
	case 50:
		return "NSEC3"
	case 99:
		return "SPF"
	case 252:
		return "AXFR"
	case 257:
		return "CAA"
	}
	return "TYPE" + strconv.Itoa(int(t))
}
