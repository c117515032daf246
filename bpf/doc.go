// Package bpf holds the eBPF C sources of the live capture backend and the
// go:generate line that compiles them with bpf2go into package capture/ebpf.
//
// egress.bpf.c attaches only to tracepoints (syscalls, sock, tcp, sched) and
// reads kernel structures through CO-RE relocations declared in kernel.h, so
// one compiled object runs on any kernel with BTF, tracepoints and the BPF
// ring buffer. See docs/watch-kernel.md.
package bpf
