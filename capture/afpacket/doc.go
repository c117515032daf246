// Package afpacket captures the DNS traffic (UDP and TCP port 53) and the
// ICMP errors of one network namespace, live, with an AF_PACKET socket: pure
// Go, no libpcap, no cgo. egress watch opens it in the watched process's
// namespace so it sees the lookups that name the process's connections,
// on every interface including loopback.
//
// Each packet is delivered as a Frame: a Linux cooked v2 (SLL2) header
// built from the socket address (interface, packet type) followed by the
// network-layer packet, decoded with package decode. The same bytes go into
// the pcapng file, so a replay decodes exactly what the live run did.
//
// SocketOwners attributes a lookup to the process that sent it, by its
// local port, through /proc/<pid>/net/{udp,tcp}[6] and the processes'
// open file descriptors.
package afpacket
