package gencap

import "encoding/binary"

// put16 and put24 backfill length fields.
func put16(b []byte, at int) { binary.BigEndian.PutUint16(b[at:], uint16(len(b)-at-2)) }
func put24(b []byte, at int) {
	n := len(b) - at - 3
	b[at], b[at+1], b[at+2] = byte(n>>16), byte(n>>8), byte(n)
}

// clientHello writes a TLS 1.3 ClientHello record for host into p and
// returns its length. rnd supplies 96 random bytes (random, session id, key
// share).
func clientHello(p []byte, host string, rnd []byte) int {
	b := append(p[:0], 0x16, 0x03, 0x01, 0, 0) // handshake record
	b = append(b, 0x01, 0, 0, 0)               // ClientHello
	b = append(b, 0x03, 0x03)
	b = append(b, rnd[:32]...)
	b = append(b, 32)
	b = append(b, rnd[32:64]...)
	b = append(b, 0, 8, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f) // cipher suites
	b = append(b, 1, 0)                                                 // null compression
	ext := len(b)
	b = append(b, 0, 0)
	// server_name
	b = append(b, 0, 0)
	sni := len(b)
	b = append(b, 0, 0)
	list := len(b)
	b = append(b, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(host)))
	b = append(b, host...)
	put16(b, list)
	put16(b, sni)
	b = append(b, 0, 0x0a, 0, 4, 0, 2, 0, 0x1d)                            // supported_groups: x25519
	b = append(b, 0, 0x0d, 0, 8, 0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01) // signature_algorithms
	b = append(b, 0, 0x2b, 0, 3, 2, 0x03, 0x04)                            // supported_versions: TLS 1.3
	b = append(b, 0, 0x10, 0, 14, 0, 12, 2, 'h', '2', 8)                   // ALPN: h2, http/1.1
	b = append(b, "http/1.1"...)
	b = append(b, 0, 0x33, 0, 38, 0, 36, 0, 0x1d, 0, 32) // key_share: x25519
	b = append(b, rnd[64:96]...)
	put16(b, ext)
	put24(b, 5+1)
	put16(b, 3)
	return len(b)
}

// serverHelloLen is the length of what serverHello writes.
const serverHelloLen = 133

// serverHello writes a TLS 1.3 ServerHello record and a ChangeCipherSpec
// record into p and returns their length. sid is the client's session id
// (echoed), rnd 64 random bytes.
func serverHello(p []byte, sid, rnd []byte) int {
	b := append(p[:0], 0x16, 0x03, 0x03, 0, 0)
	b = append(b, 0x02, 0, 0, 0)
	b = append(b, 0x03, 0x03)
	b = append(b, rnd[:32]...)
	b = append(b, 32)
	b = append(b, sid[:32]...)
	b = append(b, 0x13, 0x01, 0)
	b = append(b, 0, 46)
	b = append(b, 0, 0x2b, 0, 2, 0x03, 0x04)
	b = append(b, 0, 0x33, 0, 36, 0, 0x1d, 0, 32)
	b = append(b, rnd[32:64]...)
	put24(b, 5+1)
	put16(b, 3)
	b = append(b, 0x14, 0x03, 0x03, 0, 1, 1) // ChangeCipherSpec
	return len(b)
}

// appData writes a TLS application data record of n bytes (n >= 6) into p,
// its body taken from body.
func appData(p []byte, n int, body []byte) {
	p[0], p[1], p[2] = 0x17, 0x03, 0x03
	binary.BigEndian.PutUint16(p[3:], uint16(n-5))
	copy(p[5:n], body)
}
