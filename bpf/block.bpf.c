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
 *    app never waits for a SYN that a firewall would drop;
 *  - report the calls the tracepoints of egress.bpf.c do not see: UDP
 *    (connected or not, io_uring too) here, and the TCP connections of child
 *    cgroups (sockops: SYN, retransmits, how each ended), so the policy
 *    judges them with or without cfg_enforce;
 *  - catch every other packet the cgroup's sockets send (cgroup_skb egress):
 *    ICMP from ping sockets, raw sockets, SCTP, UDP-Lite... which the
 *    sock_addr hooks never see. Each is counted by protocol, reported once
 *    per destination and, with cfg_enforce, dropped unless allowed.
 *
 * cgroup programs apply to the cgroup's descendants too, so a command that
 * makes a child cgroup and moves into it stays under these hooks.
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
#define BPF_MAP_TYPE_SK_STORAGE 24
#define BPF_SK_STORAGE_GET_F_CREATE 1
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_MPTCP 262
#define SOCK_RAW 3
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* What a record of blocked_events says happened. */
#define KIND_REFUSED 0 /* connect()/sendmsg() refused with EPERM */
#define KIND_CALL 1    /* a UDP (or child cgroup's TCP) call let through: for the policy to judge */
#define KIND_PACKET 2  /* a packet the sock_addr hooks cannot see (ICMP, raw...); refused says whether it was dropped */
#define KIND_STEERED 3 /* a TCP connect to a DNS server, steered to the proxy: the server the app asked for */
#define KIND_CONN 4    /* a child cgroup's TCP connection (sockops): conn_op says what happened */

/* conn_op of KIND_CONN records. */
#define CONN_SYN 1         /* the first SYN is about to leave */
#define CONN_ESTABLISHED 2 /* the handshake completed */
#define CONN_RETRANSMIT 3  /* a SYN was sent again */
#define CONN_CLOSED 4      /* closed before it was established (RST, timeout or the app gave up) */

/* include/uapi/linux/bpf.h: the context of cgroup sock_addr programs. Only
 * the leading fields are declared; the verifier checks each access. */
struct bpf_sock;
struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;    /* network byte order */
	__u32 user_ip6[4]; /* network byte order */
	__u32 user_port;   /* network byte order, low 16 bits */
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	union {
		struct bpf_sock *sk;
		__u64 : 64;
	} __attribute__((aligned(8)));
};

/* include/uapi/linux/bpf.h: the socket of cgroup/sock_create and of an
 * skb. The verifier rewrites each access; the layout is the UAPI's. */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
};

#define __bpf_md_ptr(type, name) \
	union {                      \
		type name;               \
		__u64 : 64;              \
	} __attribute__((aligned(8)))

/* include/uapi/linux/bpf.h: the leading fields of a cgroup_skb context,
 * up to sk (UAPI: offsets are fixed). */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port;
	__u32 data_meta;
	__bpf_md_ptr(void *, flow_keys);
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	__bpf_md_ptr(struct bpf_sock *, sk);
};

/* include/uapi/linux/bpf.h: the context of sockops programs, up to sk
 * (UAPI: offsets are fixed). */
struct bpf_sock_ops {
	__u32 op;
	union {
		__u32 args[4];
		__u32 reply;
		__u32 replylong[4];
	};
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port; /* network byte order */
	__u32 local_port;
	__u32 is_fullsock;
	__u32 snd_cwnd;
	__u32 srtt_us;
	__u32 bpf_sock_ops_cb_flags;
	__u32 state;
	__u32 rtt_min;
	__u32 snd_ssthresh;
	__u32 rcv_nxt;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 mss_cache;
	__u32 ecn_flags;
	__u32 rate_delivered;
	__u32 rate_interval_us;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 total_retrans;
	__u32 segs_in;
	__u32 data_segs_in;
	__u32 segs_out;
	__u32 data_segs_out;
	__u32 lost_out;
	__u32 sacked_out;
	__u32 sk_txhash;
	__u64 bytes_received;
	__u64 bytes_acked;
	__bpf_md_ptr(struct bpf_sock *, sk);
};

#define BPF_SOCK_OPS_TCP_CONNECT_CB 3
#define BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB 4
#define BPF_SOCK_OPS_RETRANS_CB 9
#define BPF_SOCK_OPS_STATE_CB 10
#define BPF_SOCK_OPS_RETRANS_CB_FLAG (1 << 1)
#define BPF_SOCK_OPS_STATE_CB_FLAG (1 << 2)

const volatile __u32 cfg_enforce = 0;        /* refuse what the allow map lacks */
const volatile __u32 cfg_allow_loopback = 1; /* 127.0.0.0/8 and ::1 need no entry */
const volatile __u16 cfg_proxy_port = 0;     /* host order; 0: DNS is not steered */
const volatile __u32 cfg_proxy6 = 0;         /* the proxy also listens on [::1] */
const volatile __u64 cfg_cgroup_id = 0;      /* the run's own cgroup: others are its descendants */

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

/* A refused or reported call, for the report. */
struct blocked {
	__u64 ts; /* bpf_ktime_get_ns */
	__u32 tgid;
	__u16 port; /* host order; 0 for protocols without ports */
	__u8 proto; /* IP protocol (6, 17, 1, 58, ...) */
	__u8 family;
	__u8 addr[16];
	char comm[16];
	__u8 kind;    /* KIND_* */
	__u8 refused; /* the call was refused or the packet dropped */
	__u8 sk_type; /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW... */
	__u8 conn_op; /* CONN_* of a KIND_CONN record */
	__u32 uid;
	__u64 cookie; /* socket cookie of a KIND_CONN record */
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

/* Calls already reported (KIND_CALL, KIND_PACKET), with how many times they
 * happened: a datagram or packet flood makes one record, and the loader
 * reads the counts at the end. A plain hash, not an LRU: an evicted count
 * would be lost silently. When it is full, every new call is a record of its
 * own (or counted in blocked_lost), so each call is counted somewhere. */
struct seen_key {
	__u32 tgid;
	__u16 port;
	__u8 proto;
	__u8 kind;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct seen_key);
	__type(value, __u64);
} seen SEC(".maps");

/* Packets of the catch-all by IP protocol: [proto].packets and .dropped. */
struct proto_count {
	__u64 packets;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct proto_count);
} proto_stats SEC(".maps");

/* Who made a socket (cgroup/sock_create, process context), for the packets
 * cgroup_skb sees later, often outside the process's context. */
struct owner {
	__u32 tgid;
	__u32 uid;
	char comm[16];
	__u64 cgroup_id;  /* the cgroup the socket was made in */
	__u64 connect_cg; /* the cgroup of the process that connect()ed it (0: none yet) */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct owner);
} sk_owner SEC(".maps");

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

#define EEXIST 17

/* seen_again counts a call of key k and says whether it was reported
 * before (its record exists); false means: report it now. */
static __always_inline bool seen_again(struct seen_key *k)
{
	__u64 *n = bpf_map_lookup_elem(&seen, k);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return true;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&seen, k, &one, BPF_NOEXIST) == -EEXIST) {
		/* Another CPU reported it a moment ago. */
		n = bpf_map_lookup_elem(&seen, k);
		if (n) {
			__sync_fetch_and_add(n, 1);
			return true;
		}
	}
	return false; /* new, or the map is full: a record of its own */
}

static __always_inline struct blocked *reserve(void)
{
	struct blocked *b = bpf_ringbuf_reserve(&blocked_events, sizeof(*b), 0);
	if (!b) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&blocked_lost, &zero);
		if (n)
			(*n)++;
		return 0;
	}
	__builtin_memset(b, 0, sizeof(*b));
	b->ts = bpf_ktime_get_ns();
	return b;
}

/* report records a call made in process context (the sock_addr hooks). */
static __always_inline void report(const __u8 addr[16], __u16 port, __u8 proto, __u8 family, __u8 kind, __u8 sk_type)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (kind != KIND_REFUSED) {
		/* Once per (process, destination): the rest are counted. */
		struct seen_key k = {.tgid = tgid, .port = port, .proto = proto, .kind = kind};
		__builtin_memcpy(k.addr, addr, 16);
		if (seen_again(&k))
			return;
	}
	struct blocked *b = reserve();
	if (!b)
		return;
	b->tgid = tgid;
	b->uid = (__u32)bpf_get_current_uid_gid();
	b->port = port;
	b->proto = proto;
	b->family = family;
	b->kind = kind;
	b->refused = kind == KIND_REFUSED;
	b->sk_type = sk_type;
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
			report(addr, port, proto, AF_INET6, KIND_REFUSED, ctx->type);
			return 0;
		}
		ctx->user_port = bpf_htons(cfg_proxy_port);
		bpf_map_update_elem(&dns_orig, &cookie, &o, BPF_ANY);
		/* The tracepoints see the TCP connection go to the proxy: say
		 * which server the app asked for. */
		if (proto == IPPROTO_TCP)
			report(addr, port, proto, v6 && !is_mapped(addr) ? AF_INET6 : AF_INET, KIND_STEERED, ctx->type);
		return 1;
	}
	__u8 family = v6 && !is_mapped(addr) ? AF_INET6 : AF_INET;
	bool lo = loopback(addr);
	if (proto == IPPROTO_TCP && ctx->sk) {
		/* The tracepoints judge a connect by the connecting process's
		 * cgroup; so does the sockops program, by what is noted here. */
		struct owner *o = bpf_sk_storage_get(&sk_owner, ctx->sk, 0, 0);
		if (o) {
			o->connect_cg = bpf_get_current_cgroup_id();
			o->tgid = bpf_get_current_pid_tgid() >> 32;
			bpf_get_current_comm(o->comm, sizeof(o->comm));
		}
	}
	if (cfg_enforce && !(cfg_allow_loopback && lo) && !allowed(addr, port, proto)) {
		report(addr, port, proto, family, KIND_REFUSED, ctx->type);
		return 0;
	}
	/* The tracepoints do not see UDP: it is reported from here (a child
	 * cgroup's TCP connections by the sockops program). */
	if (!lo && proto != IPPROTO_TCP)
		report(addr, port, proto, family, KIND_CALL, ctx->type);
	return 1;
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

/* Every inet socket the cgroup makes: remember who made it, for the
 * catch-all below (packets are often sent outside the process's context). */
SEC("cgroup/sock_create")
int block_sock_create(struct bpf_sock *sk)
{
	struct owner *o = bpf_sk_storage_get(&sk_owner, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o) {
		o->tgid = bpf_get_current_pid_tgid() >> 32;
		o->uid = (__u32)bpf_get_current_uid_gid();
		bpf_get_current_comm(o->comm, sizeof(o->comm));
		o->cgroup_id = bpf_get_current_cgroup_id();
	}
	return 1;
}

/* covered says whether the sock_addr hooks decided for this socket's
 * packets: TCP (and MPTCP) streams and UDP datagrams. */
static __always_inline bool covered(struct bpf_sock *sk)
{
	if (sk->type == SOCK_STREAM)
		return sk->protocol == IPPROTO_TCP || sk->protocol == IPPROTO_MPTCP;
	if (sk->type == SOCK_DGRAM)
		return sk->protocol == IPPROTO_UDP;
	return false;
}

/* The catch-all: every packet the cgroup's sockets send. Those of TCP and
 * UDP sockets were judged at connect()/sendmsg(); the rest (ICMP of ping
 * sockets, raw sockets, other protocols) are judged here, by destination
 * and IP protocol. AF_PACKET frames do not pass here: they need CAP_NET_RAW,
 * which egress run takes away (docs/block.md). */
SEC("cgroup_skb/egress")
int block_skb_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1; /* request and time-wait sockets: TCP */
	if (covered(sk))
		return 1;
	__u8 addr[16];
	__u8 proto;
	__u16 port = 0;
	__u32 l4;
	__u8 family;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return cfg_enforce ? 0 : 1;
		proto = h[9];
		__u32 d;
		__builtin_memcpy(&d, h + 16, 4);
		mapped4(addr, d);
		l4 = (h[0] & 0x0f) * 4;
		family = AF_INET;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return cfg_enforce ? 0 : 1;
		proto = h[6];
		__builtin_memcpy(addr, h + 24, 16);
		l4 = 40;
		family = AF_INET6;
	} else {
		/* Not IP: nothing to judge it by. */
		return cfg_enforce ? 0 : 1;
	}
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__u8 pp[4];
		if (!bpf_skb_load_bytes(skb, l4, pp, sizeof(pp)))
			port = ((__u16)pp[2] << 8) | pp[3];
	}
	bool lo = loopback(addr);
	if (lo && cfg_allow_loopback)
		return 1;
	bool drop = cfg_enforce && !allowed(addr, port, proto);
	__u32 pk = proto;
	struct proto_count *pc = bpf_map_lookup_elem(&proto_stats, &pk);
	if (pc) {
		__sync_fetch_and_add(&pc->packets, 1);
		if (drop)
			__sync_fetch_and_add(&pc->dropped, 1);
	}
	struct owner *o = bpf_sk_storage_get(&sk_owner, sk, 0, 0);
	struct seen_key k = {.port = port, .proto = proto, .kind = KIND_PACKET};
	if (o)
		k.tgid = o->tgid;
	__builtin_memcpy(k.addr, addr, 16);
	if (!seen_again(&k)) {
		struct blocked *b = reserve();
		if (b) {
			b->tgid = k.tgid;
			b->port = port;
			b->proto = proto;
			b->family = family;
			b->kind = KIND_PACKET;
			b->refused = drop;
			b->sk_type = sk->type;
			__builtin_memcpy(b->addr, addr, 16);
			if (o) {
				b->uid = o->uid;
				__builtin_memcpy(b->comm, o->comm, sizeof(b->comm));
			}
			bpf_ringbuf_submit(b, 0);
		}
	}
	return drop ? 0 : 1;
}

/* The TCP connections of child cgroups, which the tracepoints of
 * egress.bpf.c (matching the run's own cgroup id) do not follow: their SYN,
 * retransmits and end, so the report can say how each one ended. */
SEC("sockops")
int block_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_RETRANS_CB && op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return 1;
	struct owner *o = bpf_sk_storage_get(&sk_owner, sk, 0, 0);
	if (!o || (o->connect_cg ? o->connect_cg : o->cgroup_id) == cfg_cgroup_id)
		return 1; /* connected from the run's own cgroup: traced by the tracepoints */
	__u8 cop;
	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG);
		cop = CONN_SYN;
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cop = CONN_ESTABLISHED;
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		if (skops->state != TCP_SYN_SENT)
			return 1;
		cop = CONN_RETRANSMIT;
		break;
	default: /* BPF_SOCK_OPS_STATE_CB: args[0] old state, args[1] new */
		if (skops->args[0] != TCP_SYN_SENT || skops->args[1] != TCP_CLOSE)
			return 1;
		cop = CONN_CLOSED;
	}
	__u8 addr[16];
	__u8 family = AF_INET;
	if (skops->family == AF_INET6) {
		__u32 a[4];
		a[0] = skops->remote_ip6[0];
		a[1] = skops->remote_ip6[1];
		a[2] = skops->remote_ip6[2];
		a[3] = skops->remote_ip6[3];
		__builtin_memcpy(addr, a, 16);
		if (!is_mapped(addr))
			family = AF_INET6;
	} else {
		mapped4(addr, skops->remote_ip4);
	}
	if (loopback(addr))
		return 1;
	struct blocked *b = reserve();
	if (!b)
		return 1;
	b->tgid = o->tgid;
	b->uid = o->uid;
	__builtin_memcpy(b->comm, o->comm, sizeof(b->comm));
	b->port = bpf_ntohl(skops->remote_port) & 0xffff;
	b->proto = IPPROTO_TCP;
	b->family = family;
	b->kind = KIND_CONN;
	b->conn_op = cop;
	b->sk_type = SOCK_STREAM;
	b->cookie = bpf_get_socket_cookie(skops);
	__builtin_memcpy(b->addr, addr, 16);
	bpf_ringbuf_submit(b, 0);
	return 1;
}
