package bpf

// The generated loader and object live next to their Go user in
// capture/ebpf, so the kernel types bpf2go emits stay unexported there.
// Flags are pinned so CI's regeneration is byte-identical: -mcpu=v3 for the
// atomic exchange (Linux >= 5.12), no paths or timestamps in the output.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -go-package ebpf -output-dir ../capture/ebpf -output-stem egress -tags linux -target bpfel -type event -type stack_event egress egress.bpf.c -- -O2 -mcpu=v3 -Wall -Werror -I.
