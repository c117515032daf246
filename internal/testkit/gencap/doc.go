// Package gencap writes large, deterministic, synthetic packet captures for
// benchmarking and testing the replay pipeline.
//
// A capture is a classic pcap file (Ethernet link type) whose packets come
// from a seeded PCG generator: the same Config always yields a byte-identical
// file. The traffic models what egress looks for: many clients in
// 198.18.0.0/16 resolving names under .example through one resolver and
// connecting to servers in 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
// Connections complete a handshake, carry a TLS ClientHello with SNI or an
// HTTP request with Host, exchange data and close with FIN; a configured share
// is silently dropped (SYN retransmits at the Linux >= 6.5 schedule until the
// caller gives up), refused with RST or rejected with ICMP unreachable.
// Busy captures: with more Clients than Flows the sessions rotate over
// thousands of hosts; InboundShare adds sessions that remote hosts in
// 192.0.2.0/24 open to the clients (served, or SYN scans left unanswered);
// PacketsPerSecond stretches simulated time (15 minutes and more at a few
// thousand packets/s).
//
// Memory is bounded: a fixed number of flow slots is recycled and names come
// from a fixed pool, so an analyzer that streams correctly uses memory that
// stays flat as the file grows. Stats returns the expected outcome counts so
// a benchmark can check what an analyzer reports: for the whole capture and,
// with Config.Windows, for the calls that start inside each window.
package gencap
