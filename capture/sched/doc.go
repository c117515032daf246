// Package sched loads the scheduler view of egress watch and run
// (bpf/sched.bpf.c): when the watched processes run and when all their
// threads sleep, as event.Activity, for the time an action lost waiting on
// a failed call (window.lost_ms). It filters in the kernel with the connect
// tracer's filter (capture/ebpf's tracked map, or the cgroup id) and sends
// a record only when "some watched thread runs" changes.
package sched
