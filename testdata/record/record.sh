#!/usr/bin/env bash
# record.sh records the captures in testdata/captures from real traffic
# between network namespaces, then writes testdata/captures/README.md.
#
# The story: an admin logs into a web shop (shopapp); at login the shop calls
# its vendor (vendord) over HTTP and HTTPS; names come from our own DNS server
# (dnsd). Each variant changes one thing (a firewall rule, the DNS zone, a
# stopped server) and records what that looks like on the wire.
#
#   admin curl ──► app ns (shopapp)  eth0 ═══ app0  router ns (dnsd, nft)  vnd0 ═══ eth0  vendor ns (vendord)
#                  198.18.0.2              198.18.0.1     198.51.100.1           198.51.100.10, .11
#                  2001:db8:1::2           2001:db8:1::1  2001:db8:2::1          2001:db8:2::10, ::11
#
# The admin's curl runs in the router ns. Only addresses from 198.18.0.0/15,
# 198.51.100.0/24 and 2001:db8::/32 are used; nothing leaves the namespaces.
#
# Usage: sudo testdata/record/record.sh [variant...]   (default: all)
# Needs: root, go, ip, nft, tcpdump, tshark/capinfos, curl.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
	echo "record.sh: needs root (network namespaces, tcpdump)" >&2
	exit 1
fi
for tool in go ip nft tcpdump tshark capinfos curl; do
	command -v "$tool" >/dev/null || { echo "record.sh: $tool not found" >&2; exit 1; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/testdata/captures"
P="egr-rec-$$" # namespace prefix, unique per run
APP="$P-app" ROUTER="$P-router" VENDOR="$P-vendor"
CONNECT_TIMEOUT=3s
work=$(mktemp -d /tmp/egress-record.XXXXXX)
declare -A bg=() # name -> pid of background processes

log() { printf 'record: %s\n' "$*" >&2; }

cleanup() {
	local rc=$?
	set +e
	for name in "${!bg[@]}"; do stop "$name"; done
	for ns in "$APP" "$ROUTER" "$VENDOR"; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	if [[ $rc -ne 0 ]]; then
		log "failed (exit $rc); logs kept in $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME NS CMD... runs CMD in namespace NS in the background.
# `ip netns exec` execs CMD, so the pid is CMD's own.
start() {
	local name=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >"$work/$name.log" 2>&1 &
	bg[$name]=$!
}

# stop NAME: SIGINT (tcpdump flushes and closes its file on it; the Go
# servers shut down), wait at most 5 s, then SIGKILL.
stop() {
	local name=$1 pid=${bg[$1]:-}
	[[ -n $pid ]] || return 0
	unset "bg[$name]"
	kill -INT "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_log NAME TEXT waits (at most 5 s) until NAME's log contains TEXT.
wait_log() {
	for _ in $(seq 50); do
		grep -q -- "$2" "$work/$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	log "$1 did not log '$2':"
	cat "$work/$1.log" >&2
	return 1
}

# capture NAME NS FILE TCPDUMP-ARGS... starts tcpdump and waits until it listens.
# -Z root: tcpdump would otherwise drop to its own user and fail to write.
capture() {
	local name=$1 ns=$2 file=$3
	shift 3
	start "$name" "$ns" tcpdump -U -Z root -w "$work/$file" "$@"
	wait_log "$name" "listening on"
}

build() {
	log "building dnsd, vendord, shopapp"
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/" \
		./internal/testkit/testnet/dnsd ./internal/testkit/testnet/vendord ./internal/testkit/testnet/shopapp)
}

topology() {
	log "building topology $P-{app,router,vendor}"
	for ns in "$APP" "$ROUTER" "$VENDOR"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip -n "$APP" link add eth0 type veth peer name app0 netns "$ROUTER"
	ip -n "$VENDOR" link add eth0 type veth peer name vnd0 netns "$ROUTER"
	ip -n "$APP" link set eth0 up
	ip -n "$VENDOR" link set eth0 up
	ip -n "$ROUTER" link set app0 up
	ip -n "$ROUTER" link set vnd0 up
	# nodad: addresses usable at once, no DAD probes in the captures.
	ip -n "$APP" addr add 198.18.0.2/24 dev eth0
	ip -n "$APP" addr add 2001:db8:1::2/64 dev eth0 nodad
	ip -n "$ROUTER" addr add 198.18.0.1/24 dev app0
	ip -n "$ROUTER" addr add 2001:db8:1::1/64 dev app0 nodad
	ip -n "$ROUTER" addr add 198.51.100.1/24 dev vnd0
	ip -n "$ROUTER" addr add 2001:db8:2::1/64 dev vnd0 nodad
	for a in 198.51.100.10/24 198.51.100.11/24; do ip -n "$VENDOR" addr add "$a" dev eth0; done
	for a in 2001:db8:2::10/64 2001:db8:2::11/64; do ip -n "$VENDOR" addr add "$a" dev eth0 nodad; done
	ip -n "$APP" route add default via 198.18.0.1
	ip -n "$APP" -6 route add default via 2001:db8:1::1
	ip -n "$VENDOR" route add default via 198.51.100.1
	ip -n "$VENDOR" -6 route add default via 2001:db8:2::1
	ip netns exec "$ROUTER" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	# The shop's resolver: our dnsd, and a silent server costs 2 s, not 10.
	mkdir -p "/etc/netns/$APP"
	printf 'nameserver 198.18.0.1\noptions timeout:2 attempts:1\n' >"/etc/netns/$APP/resolv.conf"
	log "kernel $(uname -r), tcp_syn_linear_timeouts=$(ip netns exec "$APP" sysctl -n net.ipv4.tcp_syn_linear_timeouts 2>/dev/null || echo n/a)"
}

# Zones. api.vendor.test is a CNAME, so analyzers must follow the chain.
ZONE_V4=(-rr 'updates.vendor.test A 198.51.100.10' -rr 'api.vendor.test CNAME edge.vendor.test' -rr 'edge.vendor.test A 198.51.100.11')
ZONE_V6=(-rr 'updates.vendor.test AAAA 2001:db8:2::10' -rr 'api.vendor.test CNAME edge.vendor.test' -rr 'edge.vendor.test AAAA 2001:db8:2::11')
ZONE_MIXED=(-rr 'updates.vendor.test A 198.51.100.10' -rr 'api.vendor.test CNAME edge.vendor.test' -rr 'edge.vendor.test AAAA 2001:db8:2::11')
ZONE_NONE=(-rr 'shop.test A 198.18.0.2')

# servers ZONE-ARGS... (re)starts dnsd, vendord and shopapp for a variant.
servers() {
	stop shopapp
	stop vendord
	stop dnsd
	start dnsd "$ROUTER" "$work/dnsd" -listen 198.18.0.1:53 -ttl 300 "$@"
	start vendord "$VENDOR" "$work/vendord"
	start shopapp "$APP" "$work/shopapp" -listen 198.18.0.2:8080 -connect-timeout "$CONNECT_TIMEOUT" "${SHOPAPP_ARGS[@]}"
	wait_log dnsd "msg=serving"
	wait_log vendord "addr=\[::\]:443"
	wait_log shopapp "msg=serving"
}
SHOPAPP_ARGS=()

# firewall NS RULES loads an nftables table "egress_rec" into NS, replacing
# the previous one.
firewall() {
	local ns=$1 rules=$2
	ip netns exec "$ns" nft -f - <<-EOF
		table inet egress_rec
		delete table inet egress_rec
		table inet egress_rec {
		$rules
		}
	EOF
}
unfirewall() {
	for ns in "$APP" "$ROUTER" "$VENDOR"; do
		ip netns exec "$ns" nft delete table inet egress_rec 2>/dev/null || true
	done
}

# login NAME: the admin logs in; the shop's reply is kept for the README.
login() {
	sleep 0.3
	local t0 ms
	t0=$(date +%s%N)
	ip netns exec "$ROUTER" curl -s -S --max-time 40 -d 'user=admin&password=hunter2' \
		http://198.18.0.2:8080/login >"$work/$1.reply"
	ms=$((($(date +%s%N) - t0) / 1000000))
	printf 'admin login took %d.%03d s (seen by the admin'"'"'s curl)\n' $((ms / 1000)) $((ms % 1000)) >>"$work/$1.reply"
	# Let FINs, ACKs and late retransmissions reach the capture.
	sleep 1
	log "$1: $(tr '\n' ' ' <"$work/$1.reply")"
}

# keep FILE... moves finished captures into testdata/captures, each with
# the shop's login reply as <capture>.login.txt: the app's own account of
# what happened, the ground truth for golden tests.
keep() {
	local f
	for f in "$@"; do
		install -m 0644 "$work/$f" "$out/$f"
		install -m 0644 "$work/${f%.*}.reply" "$out/${f%.*}.login.txt"
	done
}

v_story_drop_path() {
	servers "${ZONE_V4[@]}"
	firewall "$ROUTER" '
		chain forward {
			type filter hook forward priority filter; policy accept;
			ip daddr 198.51.100.0/24 meta l4proto tcp drop
		}'
	capture tcpdump "$APP" story-drop-path.pcap -i eth0
	login story-drop-path
	stop tcpdump
	keep story-drop-path.pcap
}

v_story_drop_nflog() {
	servers "${ZONE_V4[@]}"
	# The shop's own host firewall: every packet the app ns sends or receives
	# is logged to NFLOG group 5, the vendor's SYNs with prefix "drop" before
	# they are dropped. -i any never sees those SYNs. queue-threshold 1: the
	# kernel otherwise batches log messages for up to a second, and NFLOG
	# carries no timestamp for locally sent packets, so libpcap stamps them
	# when it reads the batch.
	firewall "$APP" '
		chain output {
			type filter hook output priority filter; policy accept;
			oifname "lo" accept
			ip daddr 198.51.100.0/24 meta l4proto tcp log prefix "drop" group 5 queue-threshold 1 drop
			log prefix "out" group 5 queue-threshold 1
		}
		chain input {
			type filter hook input priority filter; policy accept;
			iifname "lo" accept
			log prefix "in" group 5 queue-threshold 1
		}'
	capture tcpdump "$APP" story-drop-nflog.pcap -i nflog:5
	capture tcpdump-any "$APP" story-drop-any.pcap -i any
	login story-drop-nflog
	stop tcpdump
	stop tcpdump-any
	cp "$work/story-drop-nflog.reply" "$work/story-drop-any.reply"
	keep story-drop-nflog.pcap story-drop-any.pcap
}

v_reject_adminprohib() {
	# updates over IPv4, api over IPv6: one ICMP and one ICMPv6 rejection.
	servers "${ZONE_MIXED[@]}"
	firewall "$ROUTER" '
		chain forward {
			type filter hook forward priority filter; policy accept;
			ip daddr 198.51.100.0/24 meta l4proto tcp reject with icmp type admin-prohibited
			ip6 daddr 2001:db8:2::/64 meta l4proto tcp reject with icmpv6 type admin-prohibited
		}'
	capture tcpdump "$APP" reject-adminprohib.pcap -i eth0
	login reject-adminprohib
	stop tcpdump
	keep reject-adminprohib.pcap
}

v_rst_closed_port() {
	servers "${ZONE_V4[@]}"
	stop vendord # the vendor host is up, nothing listens on 80 or 443
	capture tcpdump "$APP" rst-closed-port.pcap -i eth0 --time-stamp-precision=nano
	login rst-closed-port
	stop tcpdump
	keep rst-closed-port.pcap
}

v_established() {
	servers "${ZONE_V4[@]}"
	capture tcpdump "$APP" established.pcap -i eth0
	login established
	stop tcpdump
	keep established.pcap
}

v_nxdomain() {
	servers "${ZONE_NONE[@]}"
	capture tcpdump "$APP" nxdomain.pcap -i eth0
	login nxdomain
	stop tcpdump
	keep nxdomain.pcap
}

v_dns_silent() {
	servers -silent "${ZONE_V4[@]}"
	capture tcpdump "$APP" dns-silent.pcap -i eth0
	login dns-silent
	stop tcpdump
	keep dns-silent.pcap
}

v_ipv6_drop() {
	servers "${ZONE_V6[@]}"
	firewall "$ROUTER" '
		chain forward {
			type filter hook forward priority filter; policy accept;
			ip6 daddr 2001:db8:2::/64 meta l4proto tcp drop
		}'
	capture tcpdump "$APP" ipv6-drop.pcap -i eth0
	login ipv6-drop
	stop tcpdump
	keep ipv6-drop.pcap
}

v_any_cooked() {
	# A normal run, seen by two -i any captures at once: one per cooked header.
	servers "${ZONE_V4[@]}"
	capture tcpdump-sll "$APP" any-cooked-sll.pcap -i any -y LINUX_SLL
	capture tcpdump-sll2 "$APP" any-cooked-sll2.pcap -i any -y LINUX_SLL2
	login any-cooked
	stop tcpdump-sll
	stop tcpdump-sll2
	cp "$work/any-cooked.reply" "$work/any-cooked-sll.reply"
	cp "$work/any-cooked.reply" "$work/any-cooked-sll2.reply"
	keep any-cooked-sll.pcap any-cooked-sll2.pcap
}

ALL=(story-drop-path story-drop-nflog reject-adminprohib rst-closed-port established nxdomain dns-silent ipv6-drop any-cooked)

main() {
	local variants=("$@")
	[[ ${#variants[@]} -gt 0 ]] || variants=("${ALL[@]}")
	mkdir -p "$out"
	build
	topology
	for v in "${variants[@]}"; do
		declare -F "v_${v//-/_}" >/dev/null || { log "unknown variant $v (known: ${ALL[*]})"; exit 2; }
		log "recording $v"
		unfirewall
		"v_${v//-/_}"
	done
	"$here/readme.sh" "$out"
}

main "$@"
