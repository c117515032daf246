//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * block.bpf.c: egress run's cgroup sock_addr hooks. Attached to the cgroup
 * made for the command, they see every connect() and unconnected sendmsg()
 * of its processes before a packet leaves, so they can:
 *
 *  - steer DNS (port 53, UDP and TCP) to egress's proxy on loopback, and
 *    make its answers look as if the original server sent them (recvmsg);
 *  - with cfg_enforce, refuse any other destination not in the allow map:
 *    returning 0 makes connect()/sendmsg() fail with EPERM at once, so the
 *    app never waits for a SYN that a firewall would drop.
 *
 * The proxy adds the addresses of allowed names to the map before it
 * replies, so an allowed connect never races its own lookup. Each refusal
 * is reported through a ring buffer, so the report says what was blocked.
 */

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define BPF_MAP_TYPE_LPM_TRIE 11
#define BPF_F_NO_PREALLOC 1
#define IPPROTO_UDP 17

/* include/uapi/linux/bpf.h: the context of cgroup sock_addr programs. Only
 * the leading fields are declared; the verifier checks each access. */
struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;    /* network byte order */
	__u32 user_ip6[4]; /* network byte order */
	__u32 user_port;   /* network byte order, low 16 bits */
	__u32 family;
	__u32 type;
	__u32 protocol;
};

const volatile __u32 cfg_enforce = 0;        /* refuse what the allow map lacks */
const volatile __u32 cfg_allow_loopback = 1; /* 127.0.0.0/8 and ::1 need no entry */
const volatile __u16 cfg_proxy_port = 0;     /* host order; 0: DNS is not steered */
const volatile __u32 cfg_proxy6 = 0;         /* the proxy also listens on [::1] */

/* Allow entries: an LPM trie over (port, proto, address). The address is
 * IPv6 or IPv4-mapped IPv6; port 0 and proto 0 are wildcards, looked up in
 * turn. prefixlen counts the 32 bits of port+proto+pad, then address bits. */
struct allow_key {
	__u32 prefixlen;
	__u16 port; /* host order */
	__u8 proto;
	__u8 pad;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct allow_key);
	__type(value, __u8);
} allow SEC(".maps");

/* The DNS server a socket meant to reach, by socket cookie: recvmsg puts it
 * back as the source of the proxy's answers. */
struct orig_dst {
	__u8 addr[16];
	__u16 port; /* network order */
	__u16 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct orig_dst);
} dns_orig SEC(".maps");

/* A refused call, for the report. */
struct blocked {
	__u64 ts; /* bpf_ktime_get_ns */
	__u32 tgid;
	__u16 port; /* host order */
	__u8 proto;
	__u8 family;
	__u8 addr[16];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} blocked_events SEC(".maps");

/* Keeps struct blocked in the BTF, so bpf2go emits its Go twin. */
const struct blocked *unused_blocked __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} blocked_lost SEC(".maps");

static __always_inline __u8 proto_of(struct bpf_sock_addr *ctx)
{
	if (ctx->type == SOCK_STREAM)
		return IPPROTO_TCP;
	return IPPROTO_UDP;
}

static __always_inline bool allowed(const __u8 addr[16], __u16 port, __u8 proto)
{
	struct allow_key k = {.prefixlen = 32 + 128};
	__builtin_memcpy(k.addr, addr, 16);
	__u16 ports[2] = {port, 0};
	__u8 protos[2] = {proto, 0};
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < 2; j++) {
			k.port = ports[i];
			k.proto = protos[j];
			if (bpf_map_lookup_elem(&allow, &k))
				return true;
		}
	}
	return false;
}

static __always_inline void report(const __u8 addr[16], __u16 port, __u8 proto, __u8 family)
{
	struct blocked *b = bpf_ringbuf_reserve(&blocked_events, sizeof(*b), 0);
	if (!b) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&blocked_lost, &zero);
		if (n)
			(*n)++;
		return;
	}
	b->ts = bpf_ktime_get_ns();
	b->tgid = bpf_get_current_pid_tgid() >> 32;
	b->port = port;
	b->proto = proto;
	b->family = family;
	__builtin_memcpy(b->addr, addr, 16);
	bpf_get_current_comm(b->comm, sizeof(b->comm));
	bpf_ringbuf_submit(b, 0);
}

static __always_inline void mapped4(__u8 out[16], __u32 ip4)
{
	__builtin_memset(out, 0, 16);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip4, 4);
}

static __always_inline bool is_mapped(const __u8 a[16])
{
	for (int i = 0; i < 10; i++)
		if (a[i])
			return false;
	return a[10] == 0xff && a[11] == 0xff;
}

static __always_inline bool loopback(const __u8 a[16])
{
	if (is_mapped(a))
		return a[12] == 127;
	for (int i = 0; i < 15; i++)
		if (a[i])
			return false;
	return a[15] == 1;
}

/* decide is the common policy of the four hooks: 1 lets the call go on
 * (perhaps rewritten to the proxy), 0 refuses it with EPERM. */
static __always_inline int decide(struct bpf_sock_addr *ctx, bool v6)
{
	__u8 addr[16];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 proto = proto_of(ctx);
	if (v6) {
		__u32 a[4];
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		__builtin_memcpy(addr, a, 16);
	} else {
		mapped4(addr, ctx->user_ip4);
	}
	if (port == 53 && cfg_proxy_port) {
		struct orig_dst o = {.port = (__u16)ctx->user_port, .family = v6 ? AF_INET6 : AF_INET};
		__builtin_memcpy(o.addr, addr, 16);
		__u64 cookie = bpf_get_socket_cookie(ctx);
		if (!v6) {
			ctx->user_ip4 = bpf_htonl(0x7f000001);
		} else if (is_mapped(addr)) {
			ctx->user_ip6[0] = 0;
			ctx->user_ip6[1] = 0;
			ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
			ctx->user_ip6[3] = bpf_htonl(0x7f000001);
		} else if (cfg_proxy6) {
			ctx->user_ip6[0] = 0;
			ctx->user_ip6[1] = 0;
			ctx->user_ip6[2] = 0;
			ctx->user_ip6[3] = bpf_htonl(1);
		} else {
			/* No proxy on [::1]: refuse, and the resolver tries the
			 * next server, an IPv4 one that is steered. */
			report(addr, port, proto, AF_INET6);
			return 0;
		}
		ctx->user_port = bpf_htons(cfg_proxy_port);
		bpf_map_update_elem(&dns_orig, &cookie, &o, BPF_ANY);
		return 1;
	}
	if (!cfg_enforce)
		return 1;
	if (cfg_allow_loopback && loopback(addr))
		return 1;
	if (allowed(addr, port, proto))
		return 1;
	report(addr, port, proto, v6 && !is_mapped(addr) ? AF_INET6 : AF_INET);
	return 0;
}

SEC("cgroup/connect4")
int block_connect4(struct bpf_sock_addr *ctx) { return decide(ctx, false); }

SEC("cgroup/connect6")
int block_connect6(struct bpf_sock_addr *ctx) { return decide(ctx, true); }

SEC("cgroup/sendmsg4")
int block_sendmsg4(struct bpf_sock_addr *ctx) { return decide(ctx, false); }

SEC("cgroup/sendmsg6")
int block_sendmsg6(struct bpf_sock_addr *ctx) { return decide(ctx, true); }

/* Answers from the proxy get the address the app sent its query to, so a
 * resolver that checks where an answer came from (glibc does) accepts it. */
SEC("cgroup/recvmsg4")
int block_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (!cfg_proxy_port || bpf_ntohs((__u16)ctx->user_port) != cfg_proxy_port)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst *o = bpf_map_lookup_elem(&dns_orig, &cookie);
	if (!o || o->family != AF_INET)
		return 1;
	__u32 ip4;
	__builtin_memcpy(&ip4, o->addr + 12, 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = o->port;
	return 1;
}

SEC("cgroup/recvmsg6")
int block_recvmsg6(struct bpf_sock_addr *ctx)
{
	if (!cfg_proxy_port || bpf_ntohs((__u16)ctx->user_port) != cfg_proxy_port)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst *o = bpf_map_lookup_elem(&dns_orig, &cookie);
	if (!o)
		return 1;
	__u32 a[4];
	__builtin_memcpy(a, o->addr, 16);
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = o->port;
	return 1;
}
