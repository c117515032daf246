package bpf

// The scheduler view (when the watched processes run, for lost time); its
// loader lives in capture/sched. Same pinned flags as gen.go.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -go-package sched -output-dir ../capture/sched -output-stem sched -tags linux -target bpfel -type sched_event sched sched.bpf.c -- -O2 -mcpu=v3 -Wall -Werror -I.
