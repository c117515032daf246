package decode

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/egress-dev/egress/event"
)

// LinkType is a pcap LINKTYPE_* value (the link-layer header of a frame).
type LinkType uint32

// Link types Decode understands.
const (
	LinkNull      LinkType = 0   // BSD loopback, family in host byte order
	LinkEthernet  LinkType = 1   // Ethernet II, with VLAN, MPLS, FabricPath
	LinkRawDLT12  LinkType = 12  // DLT_RAW on most BSDs and libpcap's old value
	LinkRawDLT14  LinkType = 14  // DLT_RAW on OpenBSD
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6, by version nibble
	LinkLoop      LinkType = 108 // OpenBSD loopback, family in network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkNFLOG     LinkType = 239 // Linux netfilter NFLOG
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// Bounds on nesting, so a crafted frame cannot make Decode loop for long.
const (
	maxVLANTags   = 8  // 802.1Q/802.1ad tags in one Ethernet header
	maxMPLSLabels = 16 // labels in one MPLS stack
	maxEncap      = 8  // nested encapsulations: FabricPath, tunnels, inner Ethernet
	maxIPv6Ext    = 16 // IPv6 extension headers in one packet
)

// Well-known UDP ports of tunnels tshark decodes by default.
const (
	portVXLAN  = 4789
	portTeredo = 3544
)

// Options configure a Decoder. The zero value gives sensible defaults.
type Options struct {
	// MaxFragDatagrams bounds the UDP datagrams under reassembly at once
	// (default 64). A negative value disables reassembly: a first fragment
	// is then decoded on its own and later ones return ErrFragment.
	MaxFragDatagrams int
	// MaxFragBytes bounds the fragment bytes held at once (default 1 MiB).
	MaxFragBytes int
	// FragTimeout evicts a datagram whose first fragment is older than this,
	// measured on packet timestamps (default 30 s, like Linux's ipfrag_time).
	FragTimeout time.Duration
}

// Stats counts what the decoder did beyond plain decoding, so no loss in
// reassembly is silent.
type Stats struct {
	FragmentsHeld    uint64 // UDP fragments accepted into the reassembler
	FragmentsDropped uint64 // fragments refused: reassembly off, cut by snap length, too large or too scattered
	Reassembled      uint64 // datagrams completed and decoded
	Evicted          uint64 // incomplete datagrams dropped for space, count or age
	Pending          int    // datagrams incomplete now
	Tunneled         uint64 // packets decoded through at least one tunnel
}

// Decoder decodes frames, keeping reusable state between them. Not safe for
// concurrent use.
type Decoder struct {
	frag      reassembler
	stats     Stats
	now       int64 // timestamp of the packet being decoded
	inReasm   bool  // decoding a reassembled datagram: no nested reassembly
	tunneled  bool
	noReassem bool
}

// NewDecoder returns a Decoder with opts applied.
func NewDecoder(opts Options) *Decoder {
	d := &Decoder{}
	n, b, t := opts.MaxFragDatagrams, opts.MaxFragBytes, opts.FragTimeout
	if n < 0 {
		d.noReassem = true
		n = 0
	} else if n == 0 {
		n = 64
	}
	if b <= 0 {
		b = 1 << 20
	}
	if t <= 0 {
		t = 30 * time.Second
	}
	d.frag = reassembler{slots: make([]fragSlot, n), maxBytes: b, timeout: int64(t)}
	return d
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() Stats {
	s := d.stats
	s.Pending = d.frag.pending()
	return s
}

// Decode fills p from one frame of the given link type. It overwrites every
// field of p except Time, WireLen and Iface, which the caller sets before
// the call (Time also ages the fragment reassembler). p.Payload points into
// frame or into the decoder's reassembly buffer, valid until the next call.
//
// It returns nil or an *Error wrapping ErrUnsupported, ErrTruncated,
// ErrMalformed or ErrFragment; on ErrTruncated and ErrFragment (and on
// ErrUnsupported for an unknown IP protocol) the addresses and Proto that
// were reached are filled. Tunnels are decoded down to the innermost packet.
func (d *Decoder) Decode(link LinkType, frame []byte, p *event.Packet) error {
	*p = event.Packet{Time: p.Time, WireLen: p.WireLen, Iface: p.Iface}
	d.now = p.Time
	d.inReasm = false
	d.tunneled = false
	err := d.link(link, frame, p)
	if d.tunneled && err == nil {
		d.stats.Tunneled++
	}
	return err
}

func (d *Decoder) link(link LinkType, b []byte, p *event.Packet) error {
	switch link {
	case LinkEthernet:
		return d.ether(b, p, 0)
	case LinkRaw, LinkRawDLT12, LinkRawDLT14:
		return d.ip(b, p, 0)
	case LinkIPv4:
		return d.ipv4(b, p, 0)
	case LinkIPv6:
		return d.ipv6(b, p, 0)
	case LinkNull, LinkLoop:
		if len(b) < 4 {
			return errNullTrunc
		}
		var fam uint32
		if link == LinkLoop {
			fam = binary.BigEndian.Uint32(b)
		} else {
			// Host byte order of the capturing machine: families are small,
			// so a value with high bits set was written big-endian.
			fam = binary.LittleEndian.Uint32(b)
			if fam > 0xffff {
				fam = binary.BigEndian.Uint32(b)
			}
		}
		switch fam {
		case 2:
			return d.ipv4(b[4:], p, 0)
		case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			return d.ipv6(b[4:], p, 0)
		}
		return errNullUnsupported
	case LinkLinuxSLL:
		if len(b) < 16 {
			return errSLLTrunc
		}
		p.Dir = sllDir(binary.BigEndian.Uint16(b))
		return d.ethertype(binary.BigEndian.Uint16(b[14:]), b[16:], p, 0)
	case LinkLinuxSLL2:
		if len(b) < 20 {
			return errSLLTrunc
		}
		p.Dir = sllDir(uint16(b[10]))
		return d.ethertype(binary.BigEndian.Uint16(b), b[20:], p, 0)
	case LinkNFLOG:
		return d.nflog(b, p)
	}
	return errLinkUnsupported
}

// sllDir maps a Linux packet type (PACKET_HOST...PACKET_OUTGOING).
func sllDir(t uint16) event.Direction {
	switch t {
	case 0, 1, 2, 3: // host, broadcast, multicast, another host
		return event.DirIn
	case 4: // outgoing
		return event.DirOut
	}
	return event.DirUnknown
}

// nflog decodes a LINKTYPE_NFLOG frame: a 4-byte header, then TLVs whose
// length and type are in the capturing host's byte order (little-endian on
// every machine that matters), padded to 4 bytes.
func (d *Decoder) nflog(b []byte, p *event.Packet) error {
	if len(b) < 4 {
		return errNFLOGTrunc
	}
	family := b[0]
	var payload []byte
	found := false
	for rest := b[4:]; len(rest) >= 4; {
		l := int(binary.LittleEndian.Uint16(rest))
		t := binary.LittleEndian.Uint16(rest[2:]) & 0x7fff
		if l < 4 {
			return errNFLOGMalformed
		}
		if l > len(rest) {
			if t == 9 { // payload cut by the snap length: decode what is there
				payload, found = rest[4:], true
			}
			break
		}
		switch t {
		case 1: // NFULA_PACKET_HDR: hw_protocol(2), hook(1), pad(1)
			if l >= 7 {
				switch rest[6] {
				case 1: // NF_INET_LOCAL_IN
					p.Dir = event.DirIn
				case 3: // NF_INET_LOCAL_OUT
					p.Dir = event.DirOut
				}
			}
		case 9: // NFULA_PAYLOAD
			payload, found = rest[4:l], true
		}
		adv := (l + 3) &^ 3
		if adv >= len(rest) {
			break
		}
		rest = rest[adv:]
	}
	if !found {
		return errNFLOGNoPayload
	}
	switch family {
	case 2:
		return d.ipv4(payload, p, 0)
	case 10:
		return d.ipv6(payload, p, 0)
	}
	return d.ip(payload, p, 0)
}

func (d *Decoder) ether(b []byte, p *event.Packet, depth int) error {
	if len(b) < 14 {
		return errEtherTrunc
	}
	return d.ethertype(binary.BigEndian.Uint16(b[12:]), b[14:], p, depth)
}

// ethertype decodes b, the bytes after an ethertype field, peeling VLAN tags.
func (d *Decoder) ethertype(et uint16, b []byte, p *event.Packet, depth int) error {
	for tags := 0; ; tags++ {
		switch et {
		case 0x0800:
			return d.ipv4(b, p, depth)
		case 0x86dd:
			return d.ipv6(b, p, depth)
		case 0x8100, 0x88a8, 0x9100, 0x9200: // 802.1Q, 802.1ad, pre-standard QinQ
			if tags >= maxVLANTags {
				return errVLANDepth
			}
			if len(b) < 4 {
				return errEtherTrunc
			}
			et, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		case 0x8847, 0x8848:
			return d.mpls(b, p, depth)
		case 0x8903:
			// Cisco FabricPath: the 16-byte outer header ends with this
			// ethertype and a 2-byte FTag/TTL; the original frame follows.
			if depth >= maxEncap {
				return errTunnelDepth
			}
			if len(b) < 2 {
				return errEtherTrunc
			}
			return d.ether(b[2:], p, depth+1)
		case 0x8864: // PPPoE session: 6-byte header, then a PPP protocol
			if len(b) < 8 {
				return errPPPoETrunc
			}
			switch binary.BigEndian.Uint16(b[6:]) {
			case 0x0021:
				return d.ipv4(b[8:], p, depth)
			case 0x0057:
				return d.ipv6(b[8:], p, depth)
			}
			return errEtherUnsupported
		default:
			return errEtherUnsupported
		}
	}
}

// mpls skips the label stack to its bottom, then decodes IP by version.
func (d *Decoder) mpls(b []byte, p *event.Packet, depth int) error {
	for i := 0; ; i++ {
		if i >= maxMPLSLabels {
			return errMPLSDepth
		}
		if len(b) < 4 {
			return errMPLSTrunc
		}
		bottom := b[2]&1 != 0
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) < 1 {
		return errMPLSTrunc
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p, depth)
	case 6:
		return d.ipv6(b, p, depth)
	}
	return errEtherUnsupported
}

func (d *Decoder) ip(b []byte, p *event.Packet, depth int) error {
	if len(b) < 1 {
		return errIPTrunc
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p, depth)
	case 6:
		return d.ipv6(b, p, depth)
	}
	return errIPVersion
}

func (d *Decoder) ipv4(b []byte, p *event.Packet, depth int) error {
	if len(b) < 20 {
		if len(b) > 0 && b[0]>>4 != 4 {
			return errIPVersion
		}
		return errIPv4Trunc
	}
	if b[0]>>4 != 4 {
		return errIPVersion
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return errIPv4Malformed
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.Proto = b[9]
	if len(b) < ihl {
		return errIPv4Trunc
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	complete := true
	switch {
	case total == 0: // segmentation offload: the kernel leaves it to the NIC
		total = len(b)
	case total < ihl:
		return errIPv4Malformed
	case total > len(b): // cut by the snap length
		total, complete = len(b), false
	}
	payload := b[ihl:total]
	frag := binary.BigEndian.Uint16(b[6:])
	more := frag&0x2000 != 0
	off := int(frag&0x1fff) * 8
	if more || off != 0 {
		key := fragKey{src: p.Src, dst: p.Dst, id: uint32(binary.BigEndian.Uint16(b[4:])), proto: p.Proto}
		return d.fragment(key, payload, off, more, complete, p, depth)
	}
	return d.transport(p.Proto, payload, p, depth)
}

func (d *Decoder) ipv6(b []byte, p *event.Packet, depth int) error {
	if len(b) < 40 {
		if len(b) > 0 && b[0]>>4 != 6 {
			return errIPVersion
		}
		return errIPv6Trunc
	}
	if b[0]>>4 != 6 {
		return errIPVersion
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	end, complete := 40+int(binary.BigEndian.Uint16(b[4:])), true
	switch {
	case end == 40 && b[6] != 59: // jumbogram or offload: trust the capture
		end = len(b)
	case end > len(b):
		end, complete = len(b), false
	}
	proto, rest, fi, err := walkIPv6Ext(b[6], b[40:end])
	p.Proto = proto
	if err != nil {
		return err
	}
	if fi.present && (fi.off != 0 || fi.more) {
		key := fragKey{src: p.Src, dst: p.Dst, id: fi.id, proto: proto, v6: true}
		return d.fragment(key, rest, fi.off, fi.more, complete, p, depth)
	}
	return d.transport(proto, rest, p, depth)
}

type fragInfo struct {
	present bool
	more    bool
	off     int
	id      uint32
}

// walkIPv6Ext skips IPv6 extension headers starting with next, returning
// the upper-layer protocol, its bytes and the fragment header if any.
func walkIPv6Ext(next uint8, b []byte) (uint8, []byte, fragInfo, error) {
	var fi fragInfo
	for i := 0; ; i++ {
		var l int
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, dest opts, mobility, HIP, shim6
			if len(b) < 2 {
				return next, b, fi, errIPv6Trunc
			}
			l = (int(b[1]) + 1) * 8
		case 51: // AH: length in 4-byte units, minus 2
			if len(b) < 2 {
				return next, b, fi, errIPv6Trunc
			}
			l = (int(b[1]) + 2) * 4
		case 44: // fragment
			if len(b) < 8 {
				return next, b, fi, errIPv6Trunc
			}
			fo := binary.BigEndian.Uint16(b[2:])
			fi = fragInfo{present: true, more: fo&1 != 0, off: int(fo &^ 7), id: binary.BigEndian.Uint32(b[4:])}
			l = 8
		default:
			return next, b, fi, nil
		}
		if i >= maxIPv6Ext {
			return next, b, fi, errIPv6ExtDepth
		}
		if l > len(b) {
			return next, b, fi, errIPv6Trunc
		}
		next, b = b[0], b[l:]
		if fi.present && (fi.off != 0 || fi.more) {
			// Offsets count from here: what follows is the fragmentable
			// part, whose headers are read once it is whole.
			return next, b, fi, nil
		}
	}
}

// fragment handles one IP fragment. UDP fragments are reassembled so that a
// fragmented DNS answer decodes whole (for IPv6 also those whose fragment
// header is followed by another extension header); other protocols decode
// their first fragment only (it alone carries the transport header).
func (d *Decoder) fragment(key fragKey, payload []byte, off int, more, complete bool, p *event.Packet, depth int) error {
	// IPv6 may put extension headers before UDP in the fragmentable part.
	udpLike := key.proto == event.ProtoUDP || (key.v6 && isIPv6Ext(key.proto))
	if !udpLike || d.noReassem || d.inReasm {
		if off == 0 {
			return d.upper(key, payload, p, depth)
		}
		if udpLike {
			d.stats.FragmentsDropped++
		}
		return errFragment
	}
	if !complete {
		d.stats.FragmentsDropped++
		if off == 0 {
			return d.upper(key, payload, p, depth)
		}
		return errFragment
	}
	dgram, st := d.frag.add(key, off, more, payload, d.now, &d.stats)
	switch st {
	case fragHeld:
		d.stats.FragmentsHeld++
		return errFragment
	case fragDone:
		d.stats.FragmentsHeld++
		d.stats.Reassembled++
		d.inReasm = true
		return d.upper(key, dgram, p, depth)
	}
	d.stats.FragmentsDropped++
	if off == 0 {
		return d.upper(key, payload, p, depth)
	}
	return errFragment
}

func isIPv6Ext(proto uint8) bool {
	switch proto {
	case 0, 43, 60, 51, 135, 139, 140:
		return true
	}
	return false
}

// upper decodes the start of a fragmented packet's fragmentable part: for
// IPv6 its extension headers come first.
func (d *Decoder) upper(key fragKey, b []byte, p *event.Packet, depth int) error {
	proto := key.proto
	if key.v6 {
		var err error
		if proto, b, _, err = walkIPv6Ext(proto, b); err != nil {
			p.Proto = proto
			return err
		}
	}
	return d.transport(proto, b, p, depth)
}

func (d *Decoder) transport(proto uint8, b []byte, p *event.Packet, depth int) error {
	p.Proto = proto
	switch proto {
	case event.ProtoTCP:
		return tcp(b, p)
	case event.ProtoUDP:
		return d.udp(b, p, depth)
	case event.ProtoICMP:
		return icmp(b, p, false)
	case event.ProtoICMPv6:
		return icmp(b, p, true)
	case 4, 41: // IPv4-in-IP, IPv6-in-IP
		if depth >= maxEncap {
			return errTunnelDepth
		}
		d.tunneled = true
		if proto == 4 {
			return d.ipv4(b, p, depth+1)
		}
		return d.ipv6(b, p, depth+1)
	case 47:
		return d.gre(b, p, depth)
	}
	return errProtoUnsupported
}

func tcp(b []byte, p *event.Packet) error {
	if len(b) < 20 {
		if len(b) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(b)
			p.DstPort = binary.BigEndian.Uint16(b[2:])
		}
		if len(b) >= 8 {
			p.Seq = binary.BigEndian.Uint32(b[4:])
		}
		if len(b) >= 12 {
			p.Ack = binary.BigEndian.Uint32(b[8:])
		}
		if len(b) >= 14 {
			p.Flags = b[13]
		}
		return errTCPTrunc
	}
	p.SrcPort = binary.BigEndian.Uint16(b)
	p.DstPort = binary.BigEndian.Uint16(b[2:])
	p.Seq = binary.BigEndian.Uint32(b[4:])
	p.Ack = binary.BigEndian.Uint32(b[8:])
	p.Flags = b[13]
	off := int(b[12]>>4) * 4
	if off < 20 {
		return errTCPMalformed
	}
	if off <= len(b) {
		p.Payload = b[off:]
	}
	// Options cut by the snap length: the fixed header is whole, which is
	// all the analyzer needs, so this is no error; the payload is empty.
	return nil
}

func (d *Decoder) udp(b []byte, p *event.Packet, depth int) error {
	if len(b) < 8 {
		if len(b) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(b)
			p.DstPort = binary.BigEndian.Uint16(b[2:])
		}
		return errUDPTrunc
	}
	p.SrcPort = binary.BigEndian.Uint16(b)
	p.DstPort = binary.BigEndian.Uint16(b[2:])
	pl := b[8:]
	if ulen := int(binary.BigEndian.Uint16(b[4:])); ulen >= 8 && ulen-8 < len(pl) {
		pl = pl[:ulen-8] // drop Ethernet padding
	} else if ulen != 0 && ulen < 8 {
		return errUDPMalformed
	}
	p.Payload = pl
	if depth >= maxEncap {
		return nil
	}
	sp, dp := p.SrcPort, p.DstPort
	switch {
	case sp == portVXLAN || dp == portVXLAN:
		// VXLAN: 8-byte header with the I flag, then an Ethernet frame.
		if len(pl) >= 8+14 && pl[0]&0x08 != 0 {
			d.tryTunnel(p, func() error { return d.ether(pl[8:], p, depth+1) })
		}
	case sp == portTeredo || dp == portTeredo:
		if in := teredoInner(pl); in != nil {
			d.tryTunnel(p, func() error { return d.ipv6(in, p, depth+1) })
		}
	}
	return nil
}

// tryTunnel decodes a UDP-borne tunnel into p; if the inner packet does not
// decode, p keeps the outer UDP view, which is then the best description.
func (d *Decoder) tryTunnel(p *event.Packet, inner func() error) {
	save := *p
	p.SrcPort, p.DstPort, p.Payload = 0, 0, nil
	if err := inner(); err != nil {
		*p = save
		return
	}
	d.tunneled = true
}

// teredoInner skips Teredo's optional authentication and origin indication
// headers (RFC 4380 section 5.1.1) and returns the IPv6 packet, or nil.
func teredoInner(b []byte) []byte {
	for range 2 {
		if len(b) < 2 || b[0] != 0 {
			break
		}
		switch b[1] {
		case 1: // authentication: id and auth lengths, 8-byte nonce, confirmation
			if len(b) < 4 {
				return nil
			}
			n := 13 + int(b[2]) + int(b[3])
			if len(b) < n {
				return nil
			}
			b = b[n:]
		case 0: // origin indication
			if len(b) < 8 {
				return nil
			}
			b = b[8:]
		default:
			return nil
		}
	}
	if len(b) < 40 || b[0]>>4 != 6 {
		return nil
	}
	return b
}

// gre decodes a GRE version 0 header and what it carries.
func (d *Decoder) gre(b []byte, p *event.Packet, depth int) error {
	if len(b) < 4 {
		return errGRETrunc
	}
	flags := binary.BigEndian.Uint16(b)
	proto := binary.BigEndian.Uint16(b[2:])
	if flags&0x0007 != 0 || flags&0x4000 != 0 { // PPTP's version 1, source routing
		return errGREUnsupported
	}
	hl := 4
	for _, bit := range [...]uint16{0x8000, 0x2000, 0x1000} { // checksum, key, sequence
		if flags&bit != 0 {
			hl += 4
		}
	}
	if len(b) < hl {
		return errGRETrunc
	}
	if depth >= maxEncap {
		return errTunnelDepth
	}
	d.tunneled = true
	in := b[hl:]
	switch proto {
	case 0x0800:
		return d.ipv4(in, p, depth+1)
	case 0x86dd:
		return d.ipv6(in, p, depth+1)
	case 0x6558: // transparent Ethernet bridging
		return d.ether(in, p, depth+1)
	case 0x8847, 0x8848:
		return d.mpls(in, p, depth+1)
	case 0x88be: // ERSPAN: type II has an 8-byte header when S is set
		if flags&0x1000 != 0 {
			if len(in) < 8 {
				return errGRETrunc
			}
			in = in[8:]
		}
		return d.ether(in, p, depth+1)
	}
	return errGREUnsupported
}

// icmp decodes ICMP or ICMPv6 and, for an error message, the quoted header.
func icmp(b []byte, p *event.Packet, v6 bool) error {
	if len(b) < 4 {
		return errICMPTrunc
	}
	p.ICMPType, p.ICMPCode = b[0], b[1]
	if len(b) < 8 {
		return nil
	}
	p.Payload = b[8:]
	isErr := false
	if v6 {
		isErr = p.ICMPType >= 1 && p.ICMPType <= 4 // unreachable, too big, time exceeded, parameter problem
	} else {
		switch p.ICMPType {
		case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
			isErr = true
		}
	}
	if isErr {
		quote(b[8:], &p.Quoted)
	}
	return nil
}

// quote decodes the IP header and first transport bytes an ICMP error
// carries. It fills what the quote holds and leaves Valid false when it does
// not even hold the addresses.
func quote(b []byte, q *event.Quoted) {
	if len(b) < 1 {
		return
	}
	var rest []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 {
			return
		}
		q.Src = netip.AddrFrom4([4]byte(b[12:16]))
		q.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		q.Proto = b[9]
		q.Valid = true
		if len(b) < ihl || binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return // options cut, or a later fragment: no transport header
		}
		rest = b[ihl:]
	case 6:
		if len(b) < 40 {
			return
		}
		q.Src = netip.AddrFrom16([16]byte(b[8:24]))
		q.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		proto, r, fi, err := walkIPv6Ext(b[6], b[40:])
		q.Proto = proto
		q.Valid = true
		if err != nil || fi.off != 0 {
			return
		}
		rest = r
	default:
		return
	}
	switch q.Proto {
	case event.ProtoTCP, event.ProtoUDP, 132: // 132: SCTP has ports there too
		if len(rest) >= 4 {
			q.SrcPort = binary.BigEndian.Uint16(rest)
			q.DstPort = binary.BigEndian.Uint16(rest[2:])
		}
		if q.Proto == event.ProtoTCP && len(rest) >= 8 {
			q.Seq = binary.BigEndian.Uint32(rest[4:])
			q.HasSeq = true
		}
	}
}
