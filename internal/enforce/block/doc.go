// Package block loads and attaches the cgroup programs of bpf/block.bpf.c
// for egress run: the sock_addr hooks steer a cgroup's DNS to egress's
// proxy and, when enforcing, refuse every destination not in the allow map
// with EPERM at connect() or sendmsg(), so a blocked call fails at once
// instead of hanging; they report the UDP calls and child cgroups' connects
// the tracepoints do not see. A cgroup_skb catch-all judges every other
// packet (ICMP, raw sockets, other protocols): reported, counted by
// protocol, and dropped when enforcing. docs/block.md explains the design.
//
// The types bpf2go generates stay in this package; Blocked is the one
// value that leaves it.
package block
