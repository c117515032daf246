#!/usr/bin/env bash
# bench-replay.sh: how fast, and in how little memory, `egress replay` reads
# large captures, next to tshark on the same files.
#
# Builds ./cmd/egress and ./cmd/gencap into a temporary directory, generates
# deterministic captures (gencap -seed 1) of each size in BENCH_SIZES, and
# for each runs, pinned to CPU 0,
#     egress replay FILE --format json > /dev/null
#     tshark -q -z conv,tcp -r FILE        (first size only, or all with BENCH_TSHARK_FULL=1)
# under GNU time, then prints a Markdown table and checks the product targets:
# >= 2M packets/s, >= 1000 MB/s, peak RSS <= 64 MiB and flat across sizes.
# With jq installed (apt-get install jq), it also runs egress once more on
# every capture, untimed, and checks its outcome counts against what gencap
# says it generated. Then (BENCH_BUSY=1, the default) it generates a long
# capture of many hosts - 15 minutes of simulated time at about 3,000
# packets/s, 5,000 client hosts, inbound sessions and SYN scans, past every
# record and fold bound - and checks egress's outcome totals and inbound
# count against gencap's truth, for the whole capture and for a window.
#
# Environment:
#   BENCH_SIZES="0.5GB 2GB"   capture sizes (gencap -size syntax)
#   BENCH_TSHARK_FULL=1       run tshark on every size, not just the first
#   BENCH_TIMEOUT=900         seconds allowed for each command
#   BENCH_DIR=$TMPDIR         where the temporary directory goes (needs the sum of the sizes free)
#   BENCH_STRICT=1            exit 1 when a target is missed
#   BENCH_BUSY=0              skip the many-host check
#   GENCAP_ARGS="-flows 4096" extra gencap flags
#   EGRESS_BIN=CMD            replace `egress replay FILE --format json` by `CMD FILE`
#                             (e.g. EGRESS_BIN=cat to test this script); egress is then not built
#
# Exit codes: 0 measured, 1 a command failed (or a target missed with BENCH_STRICT=1),
# 2 a tool is missing.
set -euo pipefail

sizes=${BENCH_SIZES:-0.5GB 2GB}
limit=${BENCH_TIMEOUT:-900}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "bench-replay: $*" >&2; exit 2; }
[ -x /usr/bin/time ] || die "GNU time is missing: apt-get install time"
command -v go >/dev/null || die "go is not on PATH"
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
pin=()
if command -v taskset >/dev/null; then
	pin=(taskset -c 0)
else
	echo "bench-replay: taskset missing (apt-get install util-linux); not pinning to one core" >&2
fi
have_tshark=1
command -v tshark >/dev/null || { have_tshark=0; echo "bench-replay: tshark missing (apt-get install tshark); skipping the comparison" >&2; }

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bench-replay.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

echo "building into $work" >&2
(cd "$root" && CGO_ENABLED=0 go build -o "$work/gencap" ./cmd/gencap)
if [ -n "${EGRESS_BIN:-}" ]; then
	egress=("$EGRESS_BIN")
	extra=()
else
	(cd "$root" && CGO_ENABLED=0 go build -o "$work/egress" ./cmd/egress)
	egress=("$work/egress" replay)
	extra=(--format json)
fi

# measure OUT CMD...: runs CMD pinned, bounded, output discarded; writes
# "seconds peak_kib" to OUT. Returns CMD's exit status.
measure() {
	local out=$1; shift
	local rc=0
	/usr/bin/time -f '%e %M' -o "$out" timeout "$limit" "${pin[@]}" "$@" >/dev/null 2>"$out.err" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "bench-replay: '$*' failed (exit $rc):" >&2
		tail -n 5 "$out.err" >&2
	fi
	# GNU time prints "Command exited with non-zero status N" first on failure.
	tail -n 1 "$out" >"$out.last" && mv "$out.last" "$out"
	return "$rc"
}

# stat FILE KEY: a top-level number from gencap's indented JSON.
stat() { sed -n "s/^  \"$2\": \([0-9]*\),*$/\1/p" "$1"; }

# check_results CAP STATS: egress's outcome counts on CAP must match
# gencap's STATS. A timeout whose give-up is not in the capture may be
# reported pending; the rest must agree exactly.
check_results() {
	if ! command -v jq >/dev/null; then
		echo "bench-replay: jq missing (apt-get install jq); not checking egress's results" >&2
		return 0
	fi
	echo "checking egress's results on $(basename "$1")" >&2
	timeout "$limit" "${egress[@]}" "$1" "${extra[@]}" >"$work/report.json" || {
		echo "bench-replay: egress replay failed on the check run" >&2
		return 1
	}
	local got want
	got=$(jq -c '
		def n(o): [.[] | select(.outcome == o) | (.count // 1)] | add // 0;  # folded records count many calls
		{established: (.connections | n("established")), refused: (.connections | n("refused")),
		 rejected: (.connections | n("rejected")),
		 timeout_or_pending: ((.connections | n("timeout")) + (.connections | n("pending"))),
		 answered: (.lookups | n("answered")), nodata: (.lookups | n("nodata")),
		 nxdomain: (.lookups | n("nxdomain")), servfail: (.lookups | n("servfail")),
		 dns_timeout_or_pending: ((.lookups | n("timeout")) + (.lookups | n("pending")))}' "$work/report.json")
	want=$(jq -c '
		{established: .tcp.established, refused: .tcp.refused, rejected: .tcp.rejected,
		 timeout_or_pending: .tcp.timeout,
		 answered: .dns.noerror, nodata: .dns.nodata,
		 nxdomain: .dns.nxdomain, servfail: .dns.servfail, dns_timeout_or_pending: .dns.timeout}' "$2")
	# Calls past egress's record bounds are folded into records with a
	# count (the "(other destinations)" ones included), so every count must
	# match exactly.
	if [ "$got" != "$want" ]; then
		echo "RESULTS DIFFER on $(basename "$1"):" >&2
		echo "  egress: $got" >&2
		echo "  gencap: $want" >&2
		results="results: egress DIFFERS from gencap (see stderr)"
		return 1
	fi
	case "$results" in *DIFFERS*) ;; *) results="results: egress matches gencap's outcome counts on every size (last: $want)" ;; esac
}

# busy_check: a long capture of many hosts past every bound; egress's
# outcome totals (sum of count by outcome, timeout and pending together) and
# inbound_attempts must equal gencap's truth, whole and in the window
# 5m-6m.
busy_check() {
	command -v jq >/dev/null || { echo "bench-replay: jq missing; not checking the busy capture" >&2; return 0; }
	local cap="$work/busy.pcap" st="$work/busy.json" local=198.18.0.0/15,2001:db8:18::/48
	echo "generating the busy capture" >&2
	timeout "$limit" "$work/gencap" -o "$cap" -packets 2700000 -flows 800 -clients 5000 -pps 2700 -mean 200 \
		-inbound 0.15 -scans 0.6 -drop 0.05 -refuse 0.03 -reject 0.02 -windows 5m-6m -seed 1 >"$st"
	local got='def n(o): [.[] | select(.outcome == o) | .count] | add // 0;
		{established: (.connections | n("established")), refused: (.connections | n("refused")),
		 rejected: (.connections | n("rejected")), timeout: ((.connections | n("timeout")) + (.connections | n("pending"))),
		 answered: (.lookups | n("answered")), nodata: (.lookups | n("nodata")), nxdomain: (.lookups | n("nxdomain")),
		 servfail: (.lookups | n("servfail")), dns_timeout: ((.lookups | n("timeout")) + (.lookups | n("pending"))),
		 inbound: .stats.inbound_attempts}'
	local whole='{established: .tcp.established, refused: .tcp.refused, rejected: .tcp.rejected, timeout: .tcp.timeout,
		answered: .dns.noerror, nodata: .dns.nodata, nxdomain: .dns.nxdomain, servfail: .dns.servfail,
		dns_timeout: .dns.timeout, inbound: .inbound.attempts}'
	local win='.windows[0] | {established: (.connections.established // 0), refused: (.connections.refused // 0),
		rejected: (.connections.rejected // 0), timeout: (.connections.timeout // 0), answered: (.lookups.answered // 0),
		nodata: (.lookups.nodata // 0), nxdomain: (.lookups.nxdomain // 0), servfail: (.lookups.servfail // 0),
		dns_timeout: (.lookups.timeout // 0), inbound: .inbound}'
	local start from to g w rc=0
	start=$(jq -r '.start_ns' "$st")
	from=$(date -u -d "@$(( start / 1000000000 + 300 ))" +%Y-%m-%dT%H:%M:%SZ)
	to=$(date -u -d "@$(( start / 1000000000 + 360 ))" +%Y-%m-%dT%H:%M:%SZ)
	echo "egress on the busy capture" >&2
	if measure "$work/busy.time" "$work/egress" replay "$cap" --local "$local" --format json; then
		read -r secs kib <"$work/busy.time"
		busy_row="| busy: $(stat "$st" packets) packets, $(jq '.end_ns - .start_ns | . / 1e9 | floor' "$st") s, 5,000 hosts | $secs s | $(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }') MiB |"
	fi
	timeout "$limit" "$work/egress" replay "$cap" --local "$local" --format json >"$work/busy-report.json" || return 1
	g=$(jq -c "$got" "$work/busy-report.json") w=$(jq -c "$whole" "$st")
	if [ "$g" != "$w" ]; then
		echo "BUSY RESULTS DIFFER (whole):" >&2; echo "  egress: $g" >&2; echo "  gencap: $w" >&2; rc=1
	fi
	timeout "$limit" "$work/egress" replay "$cap" --local "$local" --from "$from" --to "$to" --format json >"$work/busy-window.json" || return 1
	g=$(jq -c "$got" "$work/busy-window.json") w=$(jq -c "$win" "$st")
	if [ "$g" != "$w" ]; then
		echo "BUSY RESULTS DIFFER (window $from - $to):" >&2; echo "  egress: $g" >&2; echo "  gencap: $w" >&2; rc=1
	fi
	rm -f "$cap"
	if [ "$rc" = 0 ]; then
		busy_results="busy: egress matches gencap's truth, whole ($(jq -c "$whole" "$st")) and for $from - $to ($w)"
	else
		busy_results="busy: egress DIFFERS from gencap (see stderr)"
	fi
	return "$rc"
}

results="results: not checked"
busy_results="busy: not checked"
busy_row=""
failed=0
rows=()
rss=()
first=1
for size in $sizes; do
	cap="$work/cap-$size.pcap"
	echo "generating $size" >&2
	# shellcheck disable=SC2086 # GENCAP_ARGS is a list of flags
	timeout "$limit" "$work/gencap" -o "$cap" -size "$size" -seed 1 ${GENCAP_ARGS:-} >"$work/stats-$size.json"
	packets=$(stat "$work/stats-$size.json" packets)
	bytes=$(stat "$work/stats-$size.json" bytes)

	echo "egress on $size" >&2
	e_s=- e_pps=- e_mbs=- e_rss=-
	if measure "$work/egress-$size.time" "${egress[@]}" "$cap" "${extra[@]}"; then
		read -r secs kib <"$work/egress-$size.time"
		e_s=$secs
		# GNU time has 10 ms resolution: a run that short gives no rate.
		e_pps=$(awk -v p="$packets" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", p / s; else print "-" }')
		e_mbs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", b / 1e6 / s; else print "-" }')
		e_rss=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
		rss+=("$e_rss")
	else
		failed=1
	fi

	t_s=- t_rss=- ratio=-
	if [ "$have_tshark" = 1 ] && { [ "$first" = 1 ] || [ "${BENCH_TSHARK_FULL:-0}" = 1 ]; }; then
		echo "tshark on $size" >&2
		if measure "$work/tshark-$size.time" tshark -q -z conv,tcp -r "$cap"; then
			read -r secs kib <"$work/tshark-$size.time"
			t_s=$secs
			t_rss=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
			[ "$e_s" != - ] && ratio=$(awk -v t="$secs" -v e="$e_s" 'BEGIN { if (e > 0) printf "%.1fx", t / e; else print "-" }')
		else
			failed=1
		fi
	fi
	if [ -z "${EGRESS_BIN:-}" ]; then
		check_results "$cap" "$work/stats-$size.json" || failed=1
	fi
	rows+=("| $size ($bytes B) | $packets | $e_s | $e_pps | $e_mbs | $e_rss | $t_s | $t_rss | $ratio |")
	rm -f "$cap" # free the disk before the next size
	first=0
done

echo
echo "| file size | packets | egress s | pkt/s | MB/s | peak RSS MiB | tshark s | tshark RSS MiB | tshark/egress |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
if [ "${BENCH_BUSY:-1}" = 1 ] && [ -z "${EGRESS_BIN:-}" ]; then
	busy_check || failed=1
fi

echo
echo "$results"
echo "$busy_results"
[ -n "$busy_row" ] && echo "$busy_row"
echo "egress: ${egress[*]##*/} on CPU 0; $(uname -r); $(nproc) CPUs; gencap -seed 1 ${GENCAP_ARGS:-}"

# Targets, from the product issue.
missed=0
checked=0
for row in "${rows[@]}"; do
	IFS='|' read -r _ size _ _ pps mbs r _ <<<"$row"
	size=${size# } size=${size% } pps=${pps// /} mbs=${mbs// /} r=${r// /}
	if [ "$pps" = - ]; then
		echo "NOT CHECKED: $size: no rate measured"
		missed=1
		continue
	fi
	checked=$((checked + 1))
	awk -v p="$pps" 'BEGIN { exit !(p >= 2000000) }' || { echo "MISSED: $size: $pps pkt/s < 2000000"; missed=1; }
	awk -v m="$mbs" 'BEGIN { exit !(m >= 1000) }' || { echo "MISSED: $size: $mbs MB/s < 1000"; missed=1; }
	awk -v r="$r" 'BEGIN { exit !(r <= 64) }' || { echo "MISSED: $size: peak RSS $r MiB > 64"; missed=1; }
done
if [ "${#rss[@]}" -ge 2 ]; then
	awk -v a="${rss[0]}" -v b="${rss[${#rss[@]}-1]}" 'BEGIN { exit !(b <= a * 1.1 + 2) }' ||
		{ echo "MISSED: peak RSS not flat: ${rss[0]} MiB -> ${rss[${#rss[@]}-1]} MiB"; missed=1; }
fi
if [ "$missed" = 0 ] && [ "$failed" = 0 ] && [ "$checked" -gt 0 ]; then echo "all targets met"; fi

if [ "$failed" = 1 ]; then exit 1; fi
if [ "$missed" = 1 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 1; fi
exit 0
