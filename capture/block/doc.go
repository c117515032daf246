// Package block loads and attaches the cgroup sock_addr programs of
// bpf/block.bpf.c for egress run: they steer a cgroup's DNS to egress's
// proxy and, when enforcing, refuse every destination not in the allow map
// with EPERM at connect() or sendmsg(), so a blocked call fails at once
// instead of hanging. docs/block.md explains the design.
//
// The types bpf2go generates stay in this package; Blocked is the one
// value that leaves it.
package block
