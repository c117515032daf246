//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * egress.bpf.c: outbound TCP connects of watched processes, from tracepoints
 * only (no kprobes, no fentry: both are missing on locked-down kernels).
 *
 * A socket is reported only when a tracked process moved it from CLOSE to
 * SYN_SENT. Later events come from softirq or timer context (pid 0), so they
 * are joined to that first sighting by the socket's kernel address (or, for
 * inet_sk_error_report which carries no address, by its 4-tuple). Every
 * record goes through one ring buffer; a full buffer bumps a per-CPU
 * counter so no loss is silent.
 */

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Filter modes, set by the loader before load (rodata). */
#define MODE_PIDS 0   /* tgids in tracked_tgids (seeded from user space) */
#define MODE_ALL 1    /* every process */
#define MODE_CGROUP 2 /* processes in the cgroup v2 cfg_cgroup_id */

const volatile __u32 cfg_mode = MODE_PIDS;
const volatile __u32 cfg_follow = 0; /* add children of tracked tgids at fork */
const volatile __u64 cfg_cgroup_id = 0;
/* Take the user-space stack of the connecting thread (egress --stacks). Off,
 * the verifier drops the code: no cost. */
const volatile __u32 cfg_stacks = 0;

/* Record kinds: one per tracepoint outcome, turned into event.Sock in Go. */
enum kind {
	K_CONNECT = 1,      /* CLOSE->SYN_SENT, sent once the source port is known */
	K_RETRANSMIT = 2,   /* SYN retransmitted (socket still in SYN_SENT) */
	K_ESTABLISHED = 3,  /* SYN_SENT->ESTABLISHED */
	K_RESET = 4,        /* RST received in SYN_SENT */
	K_ERROR = 5,        /* inet_sk_error_report; err is the errno */
	K_CLOSE = 6,        /* ->CLOSE; oldstate says from where */
	K_CONNECT_FAIL = 7, /* connect() failed before any SYN (no route...) */
	K_UDP_CONNECT = 8,  /* a UDP socket was connected to port 53: its local address names the process of its queries */
	K_STACK = 9,        /* struct stack_event: the user stack of the thread that made the socket sk/gen */
};

struct event {
	__u64 ts;  /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 sk;  /* kernel address of struct sock */
	__u64 gen; /* generation: tells a reused address apart */
	__u32 tgid;
	__u32 tid;
	__s32 err; /* positive errno for K_ERROR, K_CONNECT_FAIL */
	__u8 kind;
	__u8 family;
	__u8 oldstate;
	__u8 newstate;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u8 saddr[16]; /* first 4 bytes for AF_INET */
	__u8 daddr[16];
	char comm[16];
	__u32 pad;
};

/* Keeps struct event in BTF so bpf2go emits its Go type. */
const struct event *unused_event __attribute__((unused));

/* Deep enough for a Go program's net.Dial (about 20 frames down to the
 * caller) and Node's JS-to-libuv path; deeper stacks are cut at the base. */
#define MAX_FRAMES 64
#ifndef BPF_F_USER_STACK
#define BPF_F_USER_STACK (1ULL << 8)
#endif

/* A K_STACK record: sent in process context just before the socket's first
 * record can be, so user space reads /proc/PID/maps while the caller lives
 * and joins the stack to the socket by sk and gen. */
struct stack_event {
	struct event h;
	__s64 size; /* bytes bpf_get_stack wrote into ips, or its negative error */
	/* The word at the user stack pointer: on x86-64, the return address
	 * into the caller of a frameless leaf (libc's connect), which a frame
	 * pointer walk skips. User space checks it before it believes it. */
	__u64 sp_word;
	__u64 ips[MAX_FRAMES];
};

const struct stack_event *unused_stack_event __attribute__((unused));

/* What we remember about a socket a tracked process created. */
struct sockinfo {
	__u64 ts; /* time of CLOSE->SYN_SENT */
	__u64 gen;
	__u32 tgid;
	__u32 tid;
	__u32 announced; /* K_CONNECT sent; set with an atomic exchange */
	__s32 err_sent;  /* errno already sent by on_error_report */
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 pad[7];
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
};

/* inet_sk_error_report carries no socket address: join by 4-tuple. */
struct tuple {
	__u8 family;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u16 pad2;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* A connect() in flight on one thread, from sys_enter to sys_exit. */
struct pending {
	__u64 ts;
	__u64 sk;      /* struct sock behind the fd */
	__u64 made_sk; /* socket that went SYN_SENT during this call, or 0 */
	__u16 dport;
	__u8 family;
	__u8 udp; /* a datagram socket connecting to a DNS server */
	__u8 pad[4];
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);  /* tgid (or a thread id added at clone; removed at its exit) */
	__type(value, __u8);
} tracked_tgids SEC(".maps");

/* LRU so the table stays bounded even if a CLOSE is never seen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock address */
	__type(value, struct sockinfo);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, __u64); /* struct sock address */
} tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* thread id */
	__type(value, struct pending);
} connects SEC(".maps");

/* When each process's last stack woke the reader (see emit_stack). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u64);
} stack_wakes SEC(".maps");

__u64 generation = 0;

static __always_inline bool is_tracked(__u32 tgid)
{
	if (cfg_mode == MODE_ALL)
		return true;
	if (cfg_mode == MODE_CGROUP)
		return bpf_get_current_cgroup_id() == cfg_cgroup_id;
	return bpf_map_lookup_elem(&tracked_tgids, &tgid) != NULL;
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

/* Copy addresses from a tracepoint record: v4 into the first 4 bytes. The
 * fields sit at odd offsets, which direct ctx loads may not do, so read them
 * like any kernel memory. */
#define COPY_ADDRS(dst, ctx)                                                              \
	do {                                                                              \
		if ((ctx)->family == AF_INET) {                                           \
			bpf_probe_read_kernel((dst)->saddr, 4, (ctx)->saddr);             \
			bpf_probe_read_kernel((dst)->daddr, 4, (ctx)->daddr);             \
		} else {                                                                  \
			bpf_probe_read_kernel((dst)->saddr, 16, (ctx)->saddr_v6);         \
			bpf_probe_read_kernel((dst)->daddr, 16, (ctx)->daddr_v6);         \
		}                                                                         \
	} while (0)

/* Wake the reader only once a batch has piled up: one wakeup per record
 * costs user space an epoll_wait and a futex per connect. The reader also
 * polls on a short timer (capture/ebpf), so a lone record is never stuck. */
#define WAKEUP_BYTES (64 * 1024)
#define RB_AVAIL_DATA 0
#define RB_NO_WAKEUP 1
#define RB_FORCE_WAKEUP 2

static __always_inline __u64 wakeup_flag(__u8 kind)
{
	/* A resolver socket's record must be read before its first query's
	 * answer comes back (egress run attributes the query by it): wake now. */
	if (kind == K_UDP_CONNECT)
		return RB_FORCE_WAKEUP;
	return bpf_ringbuf_query(&events, RB_AVAIL_DATA) >= WAKEUP_BYTES ? RB_FORCE_WAKEUP : RB_NO_WAKEUP;
}

static __always_inline void emit(__u64 sk, struct sockinfo *info, __u8 kind, __u64 ts, __s32 err,
				 __u8 oldstate, __u8 newstate)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	e->ts = ts;
	e->sk = sk;
	e->gen = info->gen;
	e->tgid = info->tgid;
	e->tid = info->tid;
	e->err = err;
	e->kind = kind;
	e->family = info->family;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->sport = info->sport;
	e->dport = info->dport;
	__builtin_memcpy(e->saddr, info->saddr, 16);
	__builtin_memcpy(e->daddr, info->daddr, 16);
	__builtin_memcpy(e->comm, info->comm, 16);
	e->pad = 0;
	bpf_ringbuf_submit(e, wakeup_flag(kind));
}

/* emit_stack sends the current thread's user stack for the socket sk of
 * generation gen. ctx is the tracepoint's: user registers are the syscall's. */
static __always_inline void emit_stack(void *ctx, __u64 sk, __u64 gen, __u32 tgid, __u32 tid)
{
	if (!cfg_stacks)
		return;
	struct stack_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(&e->h, 0, sizeof(e->h));
	e->h.ts = bpf_ktime_get_ns();
	e->h.sk = sk;
	e->h.gen = gen;
	e->h.tgid = tgid;
	e->h.tid = tid;
	e->h.kind = K_STACK;
	e->size = bpf_get_stack(ctx, e->ips, sizeof(e->ips), BPF_F_USER_STACK);
	e->sp_word = 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	unsigned long sp = BPF_CORE_READ(regs, sp);
	if (sp)
		bpf_probe_read_user(&e->sp_word, sizeof(e->sp_word), (void *)sp);
	/* A process's first stack (in a second) wakes the reader at once: it
	 * must read /proc/PID/maps before a short-lived caller (curl refused at
	 * once) exits. Later ones ride the batch: its maps are known by then. */
	__u64 now = e->h.ts, *last = bpf_map_lookup_elem(&stack_wakes, &tgid);
	__u64 flag = wakeup_flag(K_STACK);
	if (!last || now - *last > 1000000000ULL) {
		flag = RB_FORCE_WAKEUP;
		bpf_map_update_elem(&stack_wakes, &tgid, &now, BPF_ANY);
	}
	bpf_ringbuf_submit(e, flag);
}

/*
 * At CLOSE->SYN_SENT the source port is not yet chosen (tcp_v4_connect sets
 * the state before inet_hash_connect), so K_CONNECT is sent at the first
 * later sighting, with the time of the state change. The exchange makes sure
 * only one CPU sends it.
 */
static __always_inline void announce(__u64 sk, struct sockinfo *info, __u16 sport)
{
	if (__sync_lock_test_and_set(&info->announced, 1))
		return;
	info->sport = sport;
	struct tuple t = {};
	t.family = info->family;
	t.sport = sport;
	t.dport = info->dport;
	__builtin_memcpy(t.saddr, info->saddr, 16);
	__builtin_memcpy(t.daddr, info->daddr, 16);
	bpf_map_update_elem(&tuples, &t, &sk, BPF_ANY);
	emit(sk, info, K_CONNECT, info->ts, 0, TCP_CLOSE, TCP_SYN_SENT);
}

static __always_inline void forget(__u64 sk, struct sockinfo *info)
{
	struct tuple t = {};
	t.family = info->family;
	t.sport = info->sport;
	t.dport = info->dport;
	__builtin_memcpy(t.saddr, info->saddr, 16);
	__builtin_memcpy(t.daddr, info->daddr, 16);
	bpf_map_delete_elem(&tuples, &t);
	bpf_map_delete_elem(&socks, &sk);
}

SEC("tracepoint/sock/inet_sock_set_state")
int on_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	int oldstate = ctx->oldstate;
	int newstate = ctx->newstate;
	/* This runs on every TCP state change of the host. Only a connect
	 * (CLOSE->SYN_SENT), the way out of SYN_SENT and the close matter:
	 * leave every other change (FIN_WAIT, CLOSE_WAIT, LAST_ACK, an
	 * accepted connection's ESTABLISHED) before any map lookup or clock
	 * read. */
	if (oldstate != TCP_SYN_SENT && newstate != TCP_CLOSE && newstate != TCP_SYN_SENT)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	__u64 now = bpf_ktime_get_ns();

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		/* Process context: current is the connecting thread. */
		__u64 id = bpf_get_current_pid_tgid();
		__u32 tgid = id >> 32, tid = (__u32)id;
		if (!is_tracked(tgid))
			return 0;
		struct sockinfo info = {};
		info.ts = now;
		info.gen = __sync_fetch_and_add(&generation, 1) + 1;
		info.tgid = tgid;
		info.tid = tid;
		info.family = ctx->family;
		info.sport = ctx->sport;
		info.dport = ctx->dport;
		COPY_ADDRS(&info, ctx);
		bpf_get_current_comm(info.comm, sizeof(info.comm));
		bpf_map_update_elem(&socks, &sk, &info, BPF_ANY);
		emit_stack(ctx, sk, info.gen, tgid, tid);
		struct pending *p = bpf_map_lookup_elem(&connects, &tid);
		if (p)
			p->made_sk = sk;
		return 0;
	}

	struct sockinfo *info = bpf_map_lookup_elem(&socks, &sk);
	if (!info)
		return 0;
	announce(sk, info, ctx->sport);
	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED)
		emit(sk, info, K_ESTABLISHED, now, 0, oldstate, newstate);
	if (newstate == TCP_CLOSE) {
		/* tcp_done_with_error sets sk_err, then closes, and only then
		 * calls sk_error_report: send the error first, so a reader sees
		 * why before it sees the close. */
		struct sock *s = (void *)sk;
		int err = BPF_CORE_READ(s, sk_err);
		if (err > 0 && err != info->err_sent)
			emit(sk, info, K_ERROR, now, err, oldstate, newstate);
		emit(sk, info, K_CLOSE, now, 0, oldstate, newstate);
		/* The address is reused by the next socket at once. */
		forget(sk, info);
	}
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int on_retransmit(void *ctx)
{
	__u64 sk;
	int state;
	__u16 sport;
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *c = ctx;
		sk = (__u64)BPF_CORE_READ(c, skaddr);
		state = BPF_CORE_READ(c, state);
		sport = BPF_CORE_READ(c, sport);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *c = ctx;
		sk = (__u64)BPF_CORE_READ(c, skaddr);
		state = BPF_CORE_READ(c, state);
		sport = BPF_CORE_READ(c, sport);
	}
	if (state != TCP_SYN_SENT)
		return 0;
	struct sockinfo *info = bpf_map_lookup_elem(&socks, &sk);
	if (!info)
		return 0;
	announce(sk, info, sport);
	emit(sk, info, K_RETRANSMIT, bpf_ktime_get_ns(), 0, TCP_SYN_SENT, TCP_SYN_SENT);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int on_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct sockinfo *info = bpf_map_lookup_elem(&socks, &sk);
	if (!info)
		return 0;
	announce(sk, info, ctx->sport);
	/* Only a RST to our SYN is a refusal; a RST later ends an established
	 * connection and shows as ->CLOSE. */
	if (!info->announced)
		return 0;
	struct sock_common___state {
		unsigned char skc_state;
	} __attribute__((preserve_access_index)) *skc = (void *)sk;
	if (BPF_CORE_READ(skc, skc_state) != TCP_SYN_SENT)
		return 0;
	emit(sk, info, K_RESET, bpf_ktime_get_ns(), 0, TCP_SYN_SENT, TCP_SYN_SENT);
	return 0;
}

SEC("tracepoint/sock/inet_sk_error_report")
int on_error_report(struct trace_event_raw_inet_sk_error_report *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	struct tuple t = {};
	t.family = ctx->family;
	t.sport = ctx->sport;
	t.dport = ctx->dport;
	COPY_ADDRS(&t, ctx);
	__u64 sk = 0;
	__u64 *skp = bpf_map_lookup_elem(&tuples, &t);
	if (skp) {
		sk = *skp;
	} else {
		/* Not announced yet: an error while connect() still runs (an
		 * ICMP answer from a local firewall's reject) arrives in the
		 * connecting thread's context. */
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct pending *p = bpf_map_lookup_elem(&connects, &tid);
		if (!p || !p->made_sk)
			return 0;
		sk = p->made_sk;
	}
	struct sockinfo *info = bpf_map_lookup_elem(&socks, &sk);
	if (!info || info->dport != ctx->dport)
		return 0;
	/* Reached for errors on a live socket; those that close it were sent
	 * at the close, before this (the socket is forgotten by now). */
	int err = ctx->error;
	if (err <= 0) {
		/* An ICMP error that reached a socket its owner held (inside
		 * connect()) is kept as the soft error, which SO_ERROR hands to
		 * the app: that is the error the connect fails with. */
		struct sock *s = (void *)sk;
		err = BPF_CORE_READ(s, sk_err_soft);
		if (err <= 0 || err == info->err_sent)
			return 0;
	}
	announce(sk, info, ctx->sport);
	info->err_sent = err;
	emit(sk, info, K_ERROR, bpf_ktime_get_ns(), err, 0, 0);
	return 0;
}

/* The struct sock behind fd in the current task, or 0 if fd is no stream socket. */
/* sock_of_fd returns the struct sock behind fd and the socket's type. */
static __always_inline __u64 sock_of_fd(int fd, short *type)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return 0;
	*type = BPF_CORE_READ(sock, type);
	return (__u64)BPF_CORE_READ(sock, sk);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int on_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	if (!is_tracked(tgid))
		return 0;
	const void *uaddr = (const void *)ctx->args[1];
	struct pending p = {};
	__u16 family = 0;
	if (bpf_probe_read_user(&family, sizeof(family), uaddr))
		return 0;
	if (family == AF_INET) {
		struct sockaddr_in sin = {};
		if (bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return 0;
		p.dport = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(p.daddr, &sin.sin_addr, 4);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		if (bpf_probe_read_user(&sin6, sizeof(sin6), uaddr))
			return 0;
		p.dport = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(p.daddr, sin6.sin6_addr, 16);
	} else {
		return 0;
	}
	p.family = family;
	short type = 0;
	p.sk = sock_of_fd((int)ctx->args[0], &type);
	if (!p.sk)
		return 0;
	if (type == SOCK_DGRAM && p.dport == 53)
		p.udp = 1; /* a resolver's socket: remember whose it is */
	else if (type != SOCK_STREAM)
		return 0; /* other datagram connects are not calls out */
	p.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&connects, &tid, &p, BPF_ANY);
	return 0;
}

#define EINTR 4
#define EBADF 9
#define EFAULT 14
#define EINVAL 22
#define ENOTSOCK 88
#define EAFNOSUPPORT 97
#define EALREADY 114
#define EINPROGRESS 115
#define EISCONN 106

SEC("tracepoint/syscalls/sys_exit_connect")
int on_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct pending *p = bpf_map_lookup_elem(&connects, &tid);
	if (!p)
		return 0;
	long ret = ctx->ret;
	if (p->udp) {
		/* connect() bound the socket: its local address now says which
		 * process sends the DNS queries from it. */
		if (ret == 0) {
			struct sock *sk = (void *)p->sk;
			struct inet_sock *inet = (void *)p->sk;
			struct sockinfo info = {};
			info.tgid = id >> 32;
			info.tid = tid;
			info.family = p->family;
			info.dport = p->dport;
			info.sport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
			__builtin_memcpy(info.daddr, p->daddr, 16);
			if (p->family == AF_INET)
				BPF_CORE_READ_INTO(&info.saddr, sk, __sk_common.skc_rcv_saddr);
			else
				BPF_CORE_READ_INTO(&info.saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
			bpf_get_current_comm(info.comm, sizeof(info.comm));
			emit(p->sk, &info, K_UDP_CONNECT, bpf_ktime_get_ns(), 0, 0, 0);
		}
		bpf_map_delete_elem(&connects, &tid);
		return 0;
	}
	__u64 made = p->made_sk;
	if (made) {
		/* The SYN has left: the source port is bound now. */
		struct sockinfo *info = bpf_map_lookup_elem(&socks, &made);
		if (info) {
			struct inet_sock *inet = (void *)made;
			announce(made, info, bpf_ntohs(BPF_CORE_READ(inet, inet_sport)));
		}
	} else if (ret < 0) {
		int err = -ret;
		/* Failures before any SYN (no route, EACCES from a policy,
		 * EADDRNOTAVAIL). Repeated or malformed calls are no attempt. */
		if (err != EINPROGRESS && err != EALREADY && err != EISCONN && err != EINTR &&
		    err != EBADF && err != EFAULT && err != EINVAL && err != ENOTSOCK &&
		    err != EAFNOSUPPORT) {
			struct sockinfo info = {};
			info.gen = __sync_fetch_and_add(&generation, 1) + 1;
			info.tgid = id >> 32;
			info.tid = tid;
			info.family = p->family;
			info.dport = p->dport;
			__builtin_memcpy(info.daddr, p->daddr, 16);
			bpf_get_current_comm(info.comm, sizeof(info.comm));
			emit_stack(ctx, p->sk, info.gen, info.tgid, tid);
			emit(p->sk, &info, K_CONNECT_FAIL, p->ts, err, TCP_CLOSE, TCP_CLOSE);
		}
	}
	bpf_map_delete_elem(&connects, &tid);
	return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int on_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	if (cfg_mode != MODE_PIDS || !cfg_follow)
		return 0;
	/* current is the parent. child_pid is a new tgid for fork(), or a new
	 * thread id for clone(CLONE_THREAD): harmless, removed at its exit. */
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&tracked_tgids, &parent))
		return 0;
	__u32 child = ctx->child_pid;
	__u8 one = 1;
	bpf_map_update_elem(&tracked_tgids, &child, &one, BPF_ANY);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	if (cfg_mode != MODE_PIDS)
		return 0;
	/* A non-leader thread that execs takes over the tgid: its own thread
	 * id will never exit, so drop it here. The tgid stays tracked. */
	__u32 old = ctx->old_pid, pid = ctx->pid;
	if (old != pid)
		bpf_map_delete_elem(&tracked_tgids, &old);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int on_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	if (cfg_mode != MODE_PIDS)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	if (tid != tgid) {
		bpf_map_delete_elem(&tracked_tgids, &tid);
		return 0;
	}
	/* The leader: forget the tgid once the whole group is gone; kernels
	 * without group_dead forget it when the leader exits. */
	bool dead = true;
	if (bpf_core_field_exists(ctx->group_dead))
		dead = BPF_CORE_READ(ctx, group_dead);
	if (dead)
		bpf_map_delete_elem(&tracked_tgids, &tgid);
	return 0;
}
