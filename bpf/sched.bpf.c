//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * sched.bpf.c: when the watched processes run, for the time an action lost
 * (egress watch and run's window.lost_ms).
 *
 * A thread of the watched tree is "running" from its wakeup (or its switch
 * in) until it switches out to sleep; a preempted thread still wants the
 * CPU, so it stays running. The programs keep one bit per thread and a
 * count of running threads, and send a record only when the count goes
 * from 0 to 1 or from 1 to 0: a busy process costs nothing in the ring
 * buffer, however often its threads switch. Raw tracepoints, since the
 * classic sched_switch record does not say which process the next thread
 * belongs to (its task_struct does). The filter is the connect tracer's:
 * its tracked_tgids map is shared at load (pid mode), or the cgroup id.
 */

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define MODE_PIDS 0
#define MODE_ALL 1
#define MODE_CGROUP 2

const volatile __u32 cfg_mode = MODE_PIDS;
const volatile __u64 cfg_cgroup_id = 0;

struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* Flavoured names (___sched): the CO-RE relocations match the kernel's
 * task_struct, css_set, cgroup and kernfs_node by the part before ___. */
struct kernfs_node___sched {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___sched {
	struct kernfs_node___sched *kn;
} __attribute__((preserve_access_index));

struct css_set___sched {
	struct cgroup___sched *dfl_cgrp;
} __attribute__((preserve_access_index));

struct task_struct___sched {
	int pid;
	int tgid;
	struct task_struct___sched *real_parent;
	unsigned int __state;
	struct css_set___sched *cgroups;
} __attribute__((preserve_access_index));

/* TASK_DEAD in __state / exit_state: the thread will not run again. */
#define TASK_DEAD 0x80

/* One record per change of "some watched thread runs". */
struct sched_event {
	__u64 ts;      /* bpf_ktime_get_ns */
	__u32 running; /* 1: a thread started running, 0: none runs now */
	__u32 threads; /* running threads after the change */
};

const struct sched_event *unused_sched_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} sched_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sched_lost SEC(".maps");

/* The connect tracer's map (bpf/egress.bpf.c), replaced by it at load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u8);
} tracked_tgids SEC(".maps");

/* Running bit per watched thread; absent means not running. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} threads SEC(".maps");

/* The parent of each watched process forked while attached: names follow
 * the asker's tree, and a short-lived resolver (getent) is often gone
 * before user space could read its parent in /proc. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* child tgid */
	__type(value, __u32); /* parent tgid */
} parents SEC(".maps");

/* [0]: running threads of the watched tree. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} running SEC(".maps");

static __always_inline bool task_tracked(struct task_struct___sched *t, __u32 tgid)
{
	if (cfg_mode == MODE_ALL)
		return true;
	if (cfg_mode == MODE_CGROUP)
		return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id) == cfg_cgroup_id;
	return bpf_map_lookup_elem(&tracked_tgids, &tgid) != NULL;
}

static __always_inline void emit(__u64 ts, __u32 run, __u64 n)
{
	struct sched_event *e = bpf_ringbuf_reserve(&sched_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *l = bpf_map_lookup_elem(&sched_lost, &zero);
		if (l)
			*l += 1;
		return;
	}
	e->ts = ts;
	e->running = run;
	e->threads = (__u32)n;
	/* The reader polls; a wakeup per change would cost more than it. */
	bpf_ringbuf_submit(e, 1 /* BPF_RB_NO_WAKEUP */);
}

static __always_inline void count(__s64 delta, __u64 ts)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&running, &zero);
	if (!n)
		return;
	__u64 old = __sync_fetch_and_add(n, delta);
	if (delta > 0 && old == 0)
		emit(ts, 1, old + 1);
	else if (delta < 0 && old == 1)
		emit(ts, 0, 0);
}

/* set_running flips tid's bit; only the CPU that flips it counts. */
static __always_inline void set_running(__u32 tid, __u32 on, __u64 ts)
{
	__u32 *v = bpf_map_lookup_elem(&threads, &tid);
	if (!v) {
		if (!on)
			return; /* never seen running: nothing to undo */
		__u32 one = 1;
		if (bpf_map_update_elem(&threads, &tid, &one, BPF_NOEXIST) == 0) {
			count(1, ts);
			return;
		}
		v = bpf_map_lookup_elem(&threads, &tid);
		if (!v)
			return;
	}
	if (__sync_val_compare_and_swap(v, !on, on) != !on)
		return;
	count(on ? 1 : -1, ts);
}

SEC("raw_tp/sched_switch")
int on_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
	bool preempt = ctx->args[0];
	struct task_struct___sched *prev = (void *)ctx->args[1];
	struct task_struct___sched *next = (void *)ctx->args[2];
	__u64 ts = 0;

	/* prev is current. Only a thread whose bit is set can stop running,
	 * and its bit says it is watched: no filter lookup, which also holds
	 * for an exiting process whose tgid the tracer already forgot. */
	__u32 ptid = (__u32)bpf_get_current_pid_tgid();
	if (ptid != 0 && !preempt) {
		__u32 *pv = bpf_map_lookup_elem(&threads, &ptid);
		unsigned int state = BPF_CORE_READ(prev, __state);
		if (pv && state != 0) {
			ts = bpf_ktime_get_ns();
			set_running(ptid, 0, ts);
			if (state & TASK_DEAD)
				bpf_map_delete_elem(&threads, &ptid);
		}
	}
	__u32 ntid = BPF_CORE_READ(next, pid);
	if (ntid == 0)
		return 0; /* the idle task */
	__u32 *v = bpf_map_lookup_elem(&threads, &ntid);
	if (v && *v)
		return 0; /* already counted: the common case of a busy thread */
	__u32 ntgid = BPF_CORE_READ(next, tgid);
	if (!task_tracked(next, ntgid))
		return 0;
	set_running(ntid, 1, ts ? ts : bpf_ktime_get_ns());
	return 0;
}

static __always_inline int woken(struct task_struct___sched *p)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	__u32 *v = bpf_map_lookup_elem(&threads, &tid);
	if (v && *v)
		return 0;
	if (!task_tracked(p, BPF_CORE_READ(p, tgid)))
		return 0;
	set_running(tid, 1, bpf_ktime_get_ns());
	return 0;
}

SEC("raw_tp/sched_wakeup")
int on_sched_wakeup(struct bpf_raw_tracepoint_args *ctx)
{
	return woken((void *)ctx->args[0]);
}

SEC("raw_tp/sched_wakeup_new")
int on_sched_wakeup_new(struct bpf_raw_tracepoint_args *ctx)
{
	return woken((void *)ctx->args[0]);
}

SEC("raw_tp/sched_process_fork")
int on_sched_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct___sched *parent = (void *)ctx->args[0];
	struct task_struct___sched *child = (void *)ctx->args[1];
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != ctgid)
		return 0; /* a new thread, not a process */
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (!task_tracked(parent, ptgid))
		return 0;
	bpf_map_update_elem(&parents, &ctgid, &ptgid, BPF_ANY);
	return 0;
}
