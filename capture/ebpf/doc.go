// Package ebpf is the live, per-process capture backend of egress watch: it
// loads the tracepoint programs compiled from bpf/egress.bpf.c, follows the
// watched processes in the kernel and turns each ring-buffer record into an
// event.Sock.
//
// Kernel structs and the types bpf2go generates never leave this package;
// toSock is the one place where a record becomes the model. What the kernel
// must offer is described in docs/watch-kernel.md.
package ebpf
