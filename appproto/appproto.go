package appproto

import (
	"bytes"
	"encoding/binary"
)

// Status is the outcome of ClientHelloSNI.
type Status uint8

const (
	// NotTLS: the bytes are not the start of a TLS ClientHello.
	NotTLS Status = iota
	// NeedMore: a ClientHello has begun but is not complete; need is the
	// stream length it needs to be.
	NeedMore
	// Found: the ClientHello names a server.
	Found
	// NoName: a complete ClientHello without a server_name extension (or
	// with an empty one), e.g. a client connecting by address.
	NoName
)

func (s Status) String() string {
	switch s {
	case NotTLS:
		return "not-tls"
	case NeedMore:
		return "need-more"
	case Found:
		return "found"
	case NoName:
		return "no-name"
	}
	return "status(?)"
}

// MaxName bounds the name bytes kept from SNI or Host, before escaping: the
// longest DNS name in presentation form.
const MaxName = 253

const (
	recordHeader   = 5
	maxRecord      = 16384 + 2048 // TLSCiphertext limit; a plaintext record is smaller
	maxClientHello = 1 << 16      // bound on the handshake message we reassemble
	maxHTTPHead    = 8192         // bytes of an HTTP request head we scan
)

// ClientHelloSNI parses the start of a TLS client stream. It returns the
// server name with Found; NeedMore with the stream length the ClientHello
// needs (the caller buffers up to its own bound, e.g. 16 KiB, since
// ClientHellos with post-quantum key shares span two TCP segments);
// NoName for a ClientHello without a name; or NotTLS.
//
// A ClientHello split across several TLS records is reassembled in a
// bounded buffer on the stack.
func ClientHelloSNI(b []byte) (name string, status Status, need int) {
	// Record header: handshake(22), version 3.x.
	if len(b) < 1 || b[0] != 22 || (len(b) >= 2 && b[1] != 3) || (len(b) >= 3 && b[2] > 4) {
		return "", NotTLS, 0
	}
	if len(b) < recordHeader+4 {
		if len(b) >= recordHeader && !plausibleRecord(b) {
			return "", NotTLS, 0
		}
		if len(b) >= recordHeader+1 && b[recordHeader] != 1 {
			return "", NotTLS, 0
		}
		return "", NeedMore, recordHeader + 4
	}
	if !plausibleRecord(b) || b[recordHeader] != 1 { // client_hello
		return "", NotTLS, 0
	}
	hlen := int(b[6])<<16 | int(b[7])<<8 | int(b[8])
	total := 4 + hlen
	if hlen < 38 || total > maxClientHello {
		return "", NotTLS, 0
	}
	rlen := int(binary.BigEndian.Uint16(b[3:]))
	if total <= rlen { // the common case: one record holds the whole message
		if len(b) < recordHeader+total {
			return "", NeedMore, recordHeader + total
		}
		return parseClientHello(b[recordHeader+4 : recordHeader+total])
	}
	return clientHelloRecords(b, total)
}

// clientHelloRecords gathers a handshake message spread over records.
func clientHelloRecords(b []byte, total int) (string, Status, int) {
	var buf [maxClientHello]byte
	n, pos := 0, 0
	for n < total {
		if pos+recordHeader > len(b) {
			return "", NeedMore, pos + recordHeader + (total - n)
		}
		r := b[pos:]
		if r[0] != 22 || r[1] != 3 || !plausibleRecord(r) {
			return "", NotTLS, 0
		}
		rlen := int(binary.BigEndian.Uint16(r[3:]))
		if pos+recordHeader+rlen > len(b) {
			return "", NeedMore, pos + recordHeader + rlen + max(0, total-n-rlen)
		}
		n += copy(buf[n:total], r[recordHeader:recordHeader+rlen])
		pos += recordHeader + rlen
	}
	return parseClientHello(buf[4:total])
}

func plausibleRecord(b []byte) bool {
	l := int(binary.BigEndian.Uint16(b[3:]))
	return l > 0 && l <= maxRecord
}

// parseClientHello walks a ClientHello body (after the 4-byte handshake
// header) to the server_name extension.
func parseClientHello(h []byte) (string, Status, int) {
	// version(2) random(32) session_id<0..32>
	if len(h) < 35 {
		return "", NotTLS, 0
	}
	p := 34
	p += 1 + int(h[p]) // session id
	if p+2 > len(h) {
		return "", NotTLS, 0
	}
	p += 2 + int(binary.BigEndian.Uint16(h[p:])) // cipher suites
	if p+1 > len(h) {
		return "", NotTLS, 0
	}
	p += 1 + int(h[p]) // compression methods
	if p == len(h) {
		return "", NoName, 0 // no extensions at all (SSL 3.0 style)
	}
	if p+2 > len(h) {
		return "", NotTLS, 0
	}
	ext := h[p+2:]
	if l := int(binary.BigEndian.Uint16(h[p:])); l <= len(ext) {
		ext = ext[:l]
	} else {
		return "", NotTLS, 0
	}
	for len(ext) >= 4 {
		typ := binary.BigEndian.Uint16(ext)
		l := int(binary.BigEndian.Uint16(ext[2:]))
		if 4+l > len(ext) {
			return "", NotTLS, 0
		}
		if typ == 0 { // server_name: list<2> of {type(1), name<2>}
			list := ext[4 : 4+l]
			if len(list) < 2 {
				return "", NoName, 0
			}
			list = list[2:]
			for len(list) >= 3 {
				nl := int(binary.BigEndian.Uint16(list[1:]))
				if 3+nl > len(list) {
					break
				}
				if list[0] == 0 && nl > 0 { // host_name
					return sanitize(list[3 : 3+nl]), Found, 0
				}
				list = list[3+nl:]
			}
			return "", NoName, 0
		}
		ext = ext[4+l:]
	}
	return "", NoName, 0
}

// HTTPHost returns the Host of an HTTP/1.x request whose head starts b: the
// Host header, else the authority of an absolute-form request target. The
// port is removed. It reports false when b does not start with a request
// line, or when the head (as far as captured) names no host.
func HTTPHost(b []byte) (host string, ok bool) {
	if len(b) > maxHTTPHead {
		b = b[:maxHTTPHead]
	}
	// Request line: METHOD SP target SP HTTP/1.x CRLF
	i := 0
	for i < len(b) && i < 20 && b[i] >= 'A' && b[i] <= 'Z' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return "", false
	}
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		return "", false
	}
	line := bytes.TrimRight(b[:eol], "\r")
	sp := bytes.LastIndexByte(line, ' ')
	if sp <= i || !bytes.HasPrefix(line[sp+1:], []byte("HTTP/1.")) {
		return "", false
	}
	target := line[i+1 : sp]
	for rest := b[eol+1:]; ; {
		e := bytes.IndexByte(rest, '\n')
		if e < 0 {
			break // head cut short: a partial Host value could mislead
		}
		h := bytes.TrimRight(rest[:e], "\r")
		if len(h) == 0 {
			break // end of head
		}
		if len(h) > 5 && h[4] == ':' && asciiEqualFold(h[:4], "host") {
			if v := stripPort(bytes.TrimSpace(h[5:])); len(v) > 0 {
				return sanitize(v), true
			}
		}
		rest = rest[e+1:]
	}
	// Absolute form: "GET http://host:port/path HTTP/1.1" (proxies).
	for _, scheme := range [...]string{"http://", "https://"} {
		if len(target) > len(scheme) && asciiEqualFold(target[:len(scheme)], scheme) {
			auth := target[len(scheme):]
			if j := bytes.IndexAny(auth, "/?#"); j >= 0 {
				auth = auth[:j]
			}
			if j := bytes.LastIndexByte(auth, '@'); j >= 0 {
				auth = auth[j+1:]
			}
			if auth = stripPort(auth); len(auth) > 0 {
				return sanitize(auth), true
			}
		}
	}
	return "", false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// stripPort removes ":port" from host[:port] or [v6]:port.
func stripPort(h []byte) []byte {
	j := bytes.LastIndexByte(h, ':')
	if j < 0 || j == len(h)-1 {
		return bytes.TrimSuffix(h, []byte(":"))
	}
	for _, c := range h[j+1:] {
		if c < '0' || c > '9' {
			return h
		}
	}
	if h[0] == '[' {
		if h[j-1] == ']' {
			return h[:j]
		}
		return h
	}
	if bytes.IndexByte(h[:j], ':') >= 0 {
		return h // a bare IPv6 address, not host:port
	}
	return h[:j]
}

// sanitize lowercases a name and escapes every byte outside
// [a-z0-9.-_*:[]] as \xHH, after cutting it to MaxName bytes, so that it
// can be printed to a terminal, a log line or a shell safely.
func sanitize(b []byte) string {
	if len(b) > MaxName {
		b = b[:MaxName]
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(b)+8)
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			out = append(out, c+('a'-'A'))
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '*', c == ':', c == '[', c == ']':
			out = append(out, c)
		default:
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0x0f])
		}
	}
	return string(out)
}
