#!/usr/bin/env bash
# readme.sh DIR writes DIR/README.md describing the captures record.sh made:
# the story of each, then facts read back from the files with capinfos and
# tshark (link type, size, timeline of DNS, SYNs, RSTs, ICMP errors, TLS
# ClientHellos, HTTP requests), then the shop's own account of the login.
set -euo pipefail
dir=${1:?usage: readme.sh DIR}
cd "$dir"

# What each capture is meant to show. Timings are with the shop's 3 s
# connect timeout and the resolver's "timeout:2 attempts:1".
declare -A story=(
	[story-drop-path]="The router's nftables forward chain silently drops all TCP to the vendor (198.51.100.0/24). Recorded on the app's veth (Ethernet). Each vendor call: DNS answers at once, then a SYN at 0 s, retransmissions at about 1 s and 2 s (Linux >= 6.5 retransmits the first SYNs at 1 s intervals), no answer; the shop gives up after its 3 s connect timeout (no packet marks the give-up: it is inferred). Expected: updates.vendor.test:80 timeout, api.vendor.test:443 (CNAME edge.vendor.test, 198.51.100.11) timeout; the login takes about 6 s."
	[story-drop-nflog]="Link type NFLOG (239): one packet per log message, with the nft log prefix as a TLV. The same drop, but by the app host's own firewall (nftables output chain in the app ns). NFLOG group 5 logs every packet the app ns sends or receives; the vendor's SYNs carry the prefix \"drop\" (other packets \"out\" / \"in\"). Recorded at the same time as story-drop-any. The SYNs and their retransmissions (0, 1, 2 s) appear only here (timestamps are right because the rules use queue-threshold 1; with the default, the kernel batches messages up to 1 s and libpcap stamps locally sent packets when it reads the batch). Expected: both calls timeout after 3 s each, login about 6 s."
	[story-drop-any]="Recorded with tcpdump -i any in the app ns during story-drop-nflog: it shows the DNS queries and answers and the admin's login request, but no SYN to the vendor at all, because the host's output chain drops them before any device sees them. An analyzer must not call this 'no phone-home'; the gap between a DNS answer and the next activity is the only trace."
	[reject-adminprohib]="(tshark filters on tcp.flags.syn also match the SYN quoted inside each ICMP error.) The router rejects TCP to the vendor: IPv4 with ICMP destination unreachable, code 13 (communication administratively prohibited), IPv6 with ICMPv6 destination unreachable, code 1 (administratively prohibited). updates.vendor.test has only an A record (198.51.100.10), api.vendor.test -> edge.vendor.test only AAAA (2001:db8:2::11), so the HTTP call goes over IPv4 and the HTTPS call over IPv6. The IPv4 call fails at once (EHOSTUNREACH, 'no route to host'). Observed on IPv6 in this recording: the first ICMPv6 error arrived while connect() still held the socket, so the kernel kept it only as a soft error and retransmitted the SYN after 1 s; the second ICMPv6 error aborted the connect (EACCES, 'permission denied') at about 1.01 s. Expected: both calls rejected (not timeout), login about 1 s."
	[rst-closed-port]="The vendor host is up but nothing listens on 80 or 443: each SYN is answered by RST,ACK. Nanosecond timestamps (pcap magic a1b23c4d). Expected: both calls refused at once."
	[established]="Nothing blocks: DNS (A, AAAA; api is a CNAME), the HTTP update check and the HTTPS license check (ClientHello with SNI api.vendor.test) both succeed with 200. The TLS connection may end with a RST from the vendor after the response (the Go client closes with the server's session tickets unread); the call is still established. Expected: both established, login fast."
	[nxdomain]="The DNS server does not know the vendor's names and answers NXDOMAIN (with the SOA of test.). No connection is attempted. Expected: DNS nxdomain for updates.vendor.test and api.vendor.test, login fast."
	[dns-silent]="The DNS server receives the queries and never answers. The Go resolver sends A and AAAA queries in parallel and gives up after 2 s (resolv.conf timeout:2 attempts:1). No connection is attempted. Expected: DNS timeout for each name (about 2 s each), login about 4 s."
	[ipv6-drop]="The vendor's names have only AAAA records (2001:db8:2::10, 2001:db8:2::11); the router drops TCP to 2001:db8:2::/64. SYNs at 0, 1, 2 s over IPv6, no answer, give-up at 3 s (inferred). Expected: both calls timeout, login about 6 s."
	[any-cooked-sll]="A normal, successful run (as established) recorded with tcpdump -i any -y LINUX_SLL (Linux cooked v1, 16-byte header with packet type, no interface index). The HTTPS connection may end with a RST from the vendor after the response (the client closes with TLS data unread); the call is still established."
	[any-cooked-sll2]="The same run as any-cooked-sll, recorded at the same time with -i any -y LINUX_SLL2 (Linux cooked v2, 20-byte header with interface index and packet type). tcpdump 4.99 writes SLL2 for -i any by default."
)
order=(story-drop-path story-drop-nflog story-drop-any reject-adminprohib rst-closed-port established nxdomain dns-silent ipv6-drop any-cooked-sll any-cooked-sll2)

# The events that matter to egress, one line each, time relative to the first packet.
filter='dns || (tcp.flags.syn==1) || tcp.flags.reset==1 || icmp.type==3 || icmpv6.type==1 || tls.handshake.type==1 || http.request || http.response'

timeline() {
	tshark -n -r "$1" -Y "$filter" -T fields -E separator=' ' -E occurrence=f \
		-e frame.time_relative -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e _ws.col.Protocol -e _ws.col.Info 2>/dev/null |
		awk '{ printf "%8.3f  %s\n", $1, substr($0, index($0, $2)) }' |
		sed -E 's/[[:space:]]+/ /g; s/^ ?/  /' | head -n 60
}

{
	cat <<'EOF'
# Recorded captures

Real traffic between network namespaces, recorded by `testdata/record/record.sh`
(run as root; it rebuilds the topology and re-records everything in about a
minute). This file is written by `testdata/record/readme.sh`: do not edit it by hand.

## Who is who

| host | addresses | role |
| --- | --- | --- |
| app ns | 198.18.0.2, 2001:db8:1::2 | the web shop (`internal/testkit/testnet/shopapp`), HTTP on :8080, Go resolver |
| router ns | 198.18.0.1 / 198.51.100.1, 2001:db8:1::1 / 2001:db8:2::1 | forwards; runs the DNS server (`dnsd`, 198.18.0.1:53) and the admin's `curl` |
| vendor ns | 198.51.100.10 (updates), 198.51.100.11 (edge), 2001:db8:2::10, 2001:db8:2::11 | `vendord`: HTTP :80 `/check`, HTTPS :443 `/v1/license` |

The admin POSTs to `http://198.18.0.2:8080/login`. The shop then calls, in
order, `http://updates.vendor.test/check` and `https://api.vendor.test/v1/license`
(`api.vendor.test` is a CNAME for `edge.vendor.test`), each with a 3 s connect
timeout, and replies. DNS records have TTL 300. The local (capturing) host is
always the app ns; captures are on its veth `eth0` (Ethernet) unless said
otherwise. `<name>.login.txt` next to each capture is the shop's reply to the
admin: which call did what and how long it took, as measured by the shop.

EOF
	for name in "${order[@]}"; do
		f=$(ls "$name".pcap "$name".pcapng 2>/dev/null | head -n 1) || true
		[[ -n $f ]] || continue
		echo "## $f"
		echo
		echo "${story[$name]}"
		echo
		echo "- size: $(stat -c %s "$f") bytes, $(capinfos -c -M "$f" | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}') packets"
		echo "- link type: $(capinfos -E "$f" | awk -F': *' '/encapsulation/ {print $2}') (LINKTYPE $(od -An -tu4 -j20 -N4 "$f" | tr -d ' ')), file type: $(capinfos -t -M "$f" | awk -F': *' '/File type/ {print $2}'), timestamps in $(capinfos -M "$f" | awk -F': *' '/File timestamp precision/ {print $2}')"
		echo "- duration: $(capinfos -u -M "$f" | awk -F': *' '/Capture duration/ {print $2}')"
		echo
		echo "Timeline (s from first packet; DNS, SYNs, RSTs, ICMP errors, TLS ClientHello, HTTP):"
		echo
		echo '```'
		timeline "$f"
		echo '```'
		if [[ -f $name.login.txt ]]; then
			echo
			echo "The shop's reply to the admin ($name.login.txt):"
			echo
			echo '```'
			cat "$name.login.txt"
			echo '```'
		fi
		echo
	done
} >README.md
