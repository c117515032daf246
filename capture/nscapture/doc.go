// Package nscapture captures DNS and ICMP errors in every network namespace
// the host's processes use (the agent's view): one AF_PACKET capture
// (capture/afpacket) in egress's own namespace and one in each namespace
// found by rescanning /proc/*/ns/net, opened as namespaces appear and closed
// when their last process is gone. Bounded: at most Max namespaces; those
// past it are counted, not captured.
package nscapture
