package bpf

// The blocking programs of egress run --block; their loader lives in
// internal/enforce/block. Same pinned flags as gen.go.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -go-package block -output-dir ../internal/enforce/block -output-stem block -tags linux -target bpfel -type blocked block block.bpf.c -- -O2 -mcpu=v3 -Wall -Werror -I.
