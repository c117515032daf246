package decode

import "errors"

// Sentinel error kinds. Decode returns an *Error wrapping one of them; test
// with errors.Is.
var (
	// ErrUnsupported: a link type, ethertype or protocol the decoder does not
	// handle (ARP, ESP, LLC...). Nothing useful was decoded.
	ErrUnsupported = errors.New("unsupported")
	// ErrTruncated: the frame ends (snap length) before the IP or transport
	// header does. Fields decoded before the cut (addresses, Proto, maybe
	// ports) are filled so callers can still count the packet.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: a header contradicts itself (bad version, lengths).
	ErrMalformed = errors.New("malformed")
	// ErrFragment: an IP fragment without a transport header, or a UDP
	// fragment held for reassembly. Src, Dst and Proto are set. When the
	// last missing fragment arrives, Decode returns the whole datagram.
	// This is not a decoding failure: callers should not count it as one.
	ErrFragment = errors.New("ip fragment")
)

// Error is what Decode returns: which layer failed and why. Every value is
// created once at package init, so returning one allocates nothing.
type Error struct {
	Layer string // "ethernet", "ipv4", "tcp"...
	Kind  error  // one of the sentinels above
}

func (e *Error) Error() string { return "decoding " + e.Layer + ": " + e.Kind.Error() }
func (e *Error) Unwrap() error { return e.Kind }

func newErr(layer string, kind error) *Error { return &Error{Layer: layer, Kind: kind} }

// Preallocated errors; read-only after init.
var (
	errLinkUnsupported  = newErr("link type", ErrUnsupported)
	errEtherUnsupported = newErr("ethertype", ErrUnsupported)
	errEtherTrunc       = newErr("ethernet", ErrTruncated)
	errVLANDepth        = newErr("vlan", ErrMalformed)
	errMPLSTrunc        = newErr("mpls", ErrTruncated)
	errMPLSDepth        = newErr("mpls", ErrMalformed)
	errPPPoETrunc       = newErr("pppoe", ErrTruncated)
	errSLLTrunc         = newErr("linux cooked header", ErrTruncated)
	errNullTrunc        = newErr("loopback header", ErrTruncated)
	errNullUnsupported  = newErr("loopback family", ErrUnsupported)
	errNFLOGTrunc       = newErr("nflog", ErrTruncated)
	errNFLOGMalformed   = newErr("nflog", ErrMalformed)
	errNFLOGNoPayload   = newErr("nflog payload", ErrUnsupported)
	errIPTrunc          = newErr("ip", ErrTruncated)
	errIPVersion        = newErr("ip version", ErrMalformed)
	errIPv4Trunc        = newErr("ipv4", ErrTruncated)
	errIPv4Malformed    = newErr("ipv4", ErrMalformed)
	errIPv6Trunc        = newErr("ipv6", ErrTruncated)
	errIPv6Malformed    = newErr("ipv6", ErrMalformed)
	errIPv6ExtDepth     = newErr("ipv6 extension headers", ErrMalformed)
	errProtoUnsupported = newErr("ip protocol", ErrUnsupported)
	errFragment         = newErr("ip", ErrFragment)
	errTunnelDepth      = newErr("tunnel", ErrMalformed)
	errGRETrunc         = newErr("gre", ErrTruncated)
	errGREUnsupported   = newErr("gre", ErrUnsupported)
	errTCPTrunc         = newErr("tcp", ErrTruncated)
	errTCPMalformed     = newErr("tcp", ErrMalformed)
	errUDPTrunc         = newErr("udp", ErrTruncated)
	errUDPMalformed     = newErr("udp", ErrMalformed)
	errICMPTrunc        = newErr("icmp", ErrTruncated)
)
