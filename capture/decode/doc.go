// Package decode turns one captured frame into an event.Packet.
//
// It is the hot path of every packet source (pcap files, live AF_PACKET),
// so it parses headers by hand with encoding/binary and allocates nothing
// per packet: a Decoder keeps its reusable state (the IP fragment
// reassembler) and errors are preallocated values that wrap the sentinel
// kinds ErrUnsupported, ErrTruncated, ErrMalformed and ErrFragment.
//
// Decode walks link headers (Ethernet with VLAN/QinQ, MPLS, Cisco
// FabricPath, PPPoE; Linux cooked SLL/SLL2; raw IP; BSD NULL/LOOP; NFLOG),
// then IP (IPv4 options and fragments, IPv6 extension headers), then the
// tunnels tshark decodes by default (IP-in-IP, GRE, VXLAN, Teredo) down to
// the innermost packet, then TCP, UDP, ICMP and ICMPv6 including the header
// an ICMP error quotes.
//
// A Decoder is not safe for concurrent use; use one per goroutine.
package decode
