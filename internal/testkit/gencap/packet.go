package gencap

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Frame layout inside frameBuf: the 16-byte pcap record header, then the
// Ethernet frame. Building the record header in the same buffer lets one
// Write carry a whole packet.
const (
	recLen  = 16
	ethLen  = 14
	ip4Len  = 20
	ip6Len  = 40
	udpLen  = 8
	tcpLen  = 20
	synOpts = 12 // MSS, NOP, WS, NOP, NOP, SACK-permitted
	maxSeg  = 1460
)

var (
	gatewayMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	// routerV4 and routerV6 send the ICMP errors of rejected connections
	// (a firewall on the path, as nftables "reject with icmp" would).
	routerV4 = netip.AddrFrom4([4]byte{192, 0, 2, 1})
	routerV6 = netip.MustParseAddr("2001:db8:ffff::1")
)

// l4Off is where the transport header starts in frameBuf.
func l4Off(v6 bool) int {
	if v6 {
		return recLen + ethLen + ip6Len
	}
	return recLen + ethLen + ip4Len
}

// clientMAC is derived from the client index so each client has its own.
func clientMAC(client int) [6]byte {
	return [6]byte{0x02, 0xc6, 0x12, 0x00, byte(client >> 8), byte(client)}
}

// checksum adds b to a ones' complement accumulator as big-endian 16-bit
// words (b is taken to start on an even offset). Call fold on the result.
func checksum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	acc, carry = bits.Add64(acc, carry, 0)
	acc += carry // cannot overflow again: acc was at most 2^64-2 after a carry
	for len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += carry
	}
	return acc
}

// fold reduces a checksum accumulator to the 16-bit ones' complement of the
// sum, ready to store.
func fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return ^uint16(acc)
}

// pseudo returns the checksum accumulator of the IPv4 or IPv6 pseudo-header.
func pseudo(src, dst netip.Addr, proto uint8, l4len int) uint64 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = checksum(s[:], acc)
		acc = checksum(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = checksum(s[:], acc)
		acc = checksum(d[:], acc)
	}
	return acc + uint64(proto) + uint64(l4len)
}

// finish fills in the Ethernet and IP headers in front of an l4len-byte
// transport segment already in b (laid out like frameBuf) and returns the
// frame length. out says the client sent it; id is the IPv4 identification.
func finish(b []byte, client int, out bool, src, dst netip.Addr, proto uint8, l4len int, id uint16) int {
	e := b[recLen:]
	cm := clientMAC(client)
	if out {
		copy(e[0:6], gatewayMAC[:])
		copy(e[6:12], cm[:])
	} else {
		copy(e[0:6], cm[:])
		copy(e[6:12], gatewayMAC[:])
	}
	ip := e[ethLen:]
	var ttl uint8 = 64
	if !out {
		ttl = 52
	}
	frameLen := ethLen + l4len
	if src.Is4() {
		binary.BigEndian.PutUint16(e[12:], 0x0800)
		frameLen += ip4Len
		ip[0] = 0x45
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:], uint16(ip4Len+l4len))
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8] = ttl
		ip[9] = proto
		ip[10], ip[11] = 0, 0
		s, d := src.As4(), dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], fold(checksum(ip[:ip4Len], 0)))
	} else {
		binary.BigEndian.PutUint16(e[12:], 0x86dd)
		frameLen += ip6Len
		binary.BigEndian.PutUint32(ip[0:], 0x60000000)
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		ip[6] = proto
		ip[7] = ttl
		s, d := src.As16(), dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
	}
	return frameLen
}

// writeRecord stamps the pcap record header for the frameLen-byte frame in
// g.frame at g.now and writes record and frame.
func (g *gen) writeRecord(frameLen int) error {
	b := g.frame
	sec := g.now / 1e9
	frac := g.now % 1e9
	if !g.cfg.Nanosecond {
		frac /= 1e3
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(sec))
	binary.LittleEndian.PutUint32(b[4:], uint32(frac))
	binary.LittleEndian.PutUint32(b[8:], uint32(frameLen))
	binary.LittleEndian.PutUint32(b[12:], uint32(frameLen))
	g.stats.Packets++
	g.stats.WireBytes += uint64(frameLen)
	g.stats.Bytes += uint64(recLen + frameLen)
	g.stats.EndNanos = g.now
	_, err := g.w.Write(b[:recLen+frameLen])
	return err
}

// tcpPayload returns the buffer where the payload of a TCP segment of f goes.
func (g *gen) tcpPayload(f *flow, syn bool) []byte {
	off := l4Off(f.v6) + tcpLen
	if syn {
		off += synOpts
	}
	return g.frame[off:]
}

// buildTCP lays out one TCP segment of flow f in b, whose n payload bytes
// are already in place (see tcpPayload), and returns the frame length. out
// says the client sends it.
func buildTCP(b []byte, f *flow, out bool, flags uint8, seq, ack uint32, n int, id uint16) int {
	v6 := f.v6
	t := b[l4Off(v6):]
	src, dst, sp, dp := f.cli, f.srv, f.cport, f.sport
	if !out {
		src, dst, sp, dp = dst, src, dp, sp
	}
	hl := tcpLen
	if flags&flagSYN != 0 {
		hl += synOpts
		mss := uint16(maxSeg)
		if v6 {
			mss -= ip6Len - ip4Len
		}
		o := t[tcpLen:]
		o[0], o[1] = 2, 4 // MSS
		binary.BigEndian.PutUint16(o[2:], mss)
		o[4], o[5], o[6], o[7] = 1, 3, 3, 7   // NOP, window scale 7
		o[8], o[9], o[10], o[11] = 1, 1, 4, 2 // NOP, NOP, SACK permitted
	}
	binary.BigEndian.PutUint16(t[0:], sp)
	binary.BigEndian.PutUint16(t[2:], dp)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(hl/4) << 4
	t[13] = flags
	win := uint16(502) // 64 KiB with window scale 7
	if flags&flagSYN != 0 {
		win = 64240 // never scaled in a SYN
	}
	if flags&flagRST != 0 {
		win = 0
	}
	binary.BigEndian.PutUint16(t[14:], win)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	l4len := hl + n
	binary.BigEndian.PutUint16(t[16:], fold(checksum(t[:l4len], pseudo(src, dst, protoTCP, l4len))))
	// finish wants "the local host sends it": for an inbound session the
	// client is the remote end.
	return finish(b, f.client, out != f.inbound, src, dst, protoTCP, l4len, id)
}

// tcp writes one TCP segment of f; see buildTCP.
func (g *gen) tcp(f *flow, out bool, flags uint8, seq, ack uint32, n int) error {
	g.ipID++
	if flags&flagSYN != 0 && out {
		f.synIPID = g.ipID
	}
	g.stats.TCP.Packets++
	return g.writeRecord(buildTCP(g.frame, f, out, flags, seq, ack, n, g.ipID))
}

// udp writes one UDP datagram whose n payload bytes are already at
// g.frame[l4Off(v6)+udpLen:].
func (g *gen) udp(client int, out bool, src, dst netip.Addr, sp, dp uint16, n int) error {
	t := g.frame[l4Off(src.Is6()):]
	l4len := udpLen + n
	binary.BigEndian.PutUint16(t[0:], sp)
	binary.BigEndian.PutUint16(t[2:], dp)
	binary.BigEndian.PutUint16(t[4:], uint16(l4len))
	t[6], t[7] = 0, 0
	c := fold(checksum(t[:l4len], pseudo(src, dst, protoUDP, l4len)))
	if c == 0 {
		c = 0xffff // zero means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(t[6:], c)
	g.ipID++
	return g.writeRecord(finish(g.frame, client, out, src, dst, protoUDP, l4len, g.ipID))
}

// icmpReject writes the ICMP destination unreachable (administratively
// prohibited) that a firewall on the path sends back for the SYN of f,
// quoting the SYN's IP header and whole TCP header as Linux does.
func (g *gen) icmpReject(f *flow, seq uint32) error {
	ipq := ip4Len
	if f.v6 {
		ipq = ip6Len
	}
	qlen := ipq + tcpLen + synOpts
	buildTCP(g.quote, f, true, flagSYN, seq, 0, 0, f.synIPID)
	t := g.frame[l4Off(f.v6):]
	copy(t[8:], g.quote[recLen+ethLen:recLen+ethLen+qlen])
	l4len := 8 + qlen
	var proto uint8
	var router netip.Addr
	var acc uint64
	if f.v6 {
		proto, router = protoICMPv6, routerV6
		t[0], t[1] = 1, 1 // destination unreachable, administratively prohibited
		acc = pseudo(router, f.cli, proto, l4len)
	} else {
		proto, router = protoICMP, routerV4
		t[0], t[1] = 3, 13 // destination unreachable, communication administratively prohibited
	}
	t[2], t[3], t[4], t[5], t[6], t[7] = 0, 0, 0, 0, 0, 0
	binary.BigEndian.PutUint16(t[2:], fold(checksum(t[:l4len], acc)))
	g.ipID++
	return g.writeRecord(finish(g.frame, f.client, false, router, f.cli, proto, l4len, g.ipID))
}
