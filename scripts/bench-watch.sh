#!/usr/bin/env bash
# bench-watch.sh: what `egress watch` and `egress agent` cost a connect-heavy
# host.
#
# internal/testkit/connload connects to its own loopback listener from WORKERS
# goroutines for DURATION at each rate of RATES ("max" = as fast as it can),
# in the MODES run back to back and interleaved (alone, watched by
# `egress watch --pid`, by `egress watch --pid --stacks` (the user stack of
# each connect, symbolized), by `egress watch --pid` without the scheduler
# view (EGRESS_SCHED=off: nosched, so the view's cost is watch's minus
# nosched's), under a host-wide `egress agent`), RUNS rounds,
# so a noisy neighbour on a shared machine hits every mode alike. For each run
# it counts:
#   - connload's throughput and its own user and system CPU (GNU time): the
#     tracepoints run in the connecting thread, so their kernel cost shows
#     in its system time;
#   - egress's user and system CPU and peak RSS (/proc/PID/stat, status);
#   - the eBPF programs' own run time (kernel.bpf_stats_enabled, bpftool),
#     the kernel cost of the view, per event;
#   - events lost and connections reported.
# Needs root, jq, bpftool, GNU time. Bounded: every run ends after
# DURATION plus a few seconds; loopback only.
#
#   sudo scripts/bench-watch.sh        # DURATION=5s WORKERS=4 RUNS=2 RATES="max 10000 1000"
#   SOAK=1800 sudo scripts/bench-watch.sh   # also: agent RSS every 10 s under 1000 connects/s for 30 min
set -euo pipefail

DURATION=${DURATION:-5s}
WORKERS=${WORKERS:-4}
RUNS=${RUNS:-2}
RATES=${RATES:-max 10000 1000}
SOAK=${SOAK:-0}
MODES=${MODES:-alone watch nosched stacks agent}
DELAY=1.5s # time for watch to attach before the load starts

if [ "$(id -u)" != 0 ]; then
	echo "bench-watch: needs root (eBPF and AF_PACKET)" >&2
	exit 2
fi
for tool in go jq awk bpftool /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-watch: needs $tool" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sysctl -qw kernel.bpf_stats_enabled="$stats_was" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$tmp/egress" ./cmd/egress
CGO_ENABLED=0 go build -o "$tmp/connload" ./internal/testkit/connload
sysctl -qw kernel.bpf_stats_enabled=1
tck=$(getconf CLK_TCK)
secs=$(awk -v d="$DURATION" 'BEGIN { sub(/s$/, "", d); print d }')

rate_of() { awk '{for (i = 1; i < NF; i++) if ($i == "per_second") print $(i + 1)}' "$1"; }
# cpu PID: "user_seconds system_seconds" used so far.
cpu() { awk -v hz="$tck" '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); printf "%.3f %.3f", f[12] / hz, f[13] / hz }' "/proc/$1/stat"; }
hwm() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# bpfns PID: "runs total_ns" of the eBPF programs PID holds.
# (The programs are those whose ids the process's fds name in fdinfo.)
bpfns() {
	local ids
	ids=$(cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '$1 == "prog_id:" { print $2 }' | sort -u | jq -Rsc 'split("\n") | map(select(. != "") | tonumber)')
	bpftool prog show -j | jq -r --argjson ids "$ids" '[.[] | select(.id as $i | $ids | index($i))] | "\(map(.run_cnt // 0) | add // 0) \(map(.run_time_ns // 0) | add // 0)"'
}

# load OUT RATE: connload under GNU time, its pid in lp; "max" means no rate limit.
load() {
	local out=$1 rate=$2 args=(-delay "$DELAY" -duration "$DURATION" -workers "$WORKERS")
	[ "$rate" != max ] && args+=(-rate "$rate")
	/usr/bin/time -f '%U %S' -o "$out.time" "$tmp/connload" "${args[@]}" >"$out.load" &
	lp=$!
}

# run MODE OUT RATE: one measured run; writes OUT.row.
run() {
	local mode=$1 out=$2 rate=$3 eg="" lp
	if [ "$mode" = agent ]; then
		"$tmp/egress" agent --loopback --output "$out.jsonl" --max-size 50000000 --max-files 1 \
			--metrics-listen 127.0.0.1:0 --summary-every 1s 2>"$out.err" &
		eg=$!
		pids+=("$eg")
		for _ in $(seq 100); do grep -q 'attached in' "$out.err" 2>/dev/null && break; sleep 0.05; done
	fi
	load "$out" "$rate"
	pids+=("$lp")
	if [ "$mode" = watch ] || [ "$mode" = stacks ] || [ "$mode" = nosched ]; then
		# GNU time forks connload: watch the child.
		local child=""
		for _ in $(seq 100); do child=$(pgrep -P "$lp" connload || true); [ -n "$child" ] && break; sleep 0.01; done
		local stacks=()
		[ "$mode" = stacks ] && stacks=(--stacks)
		local sv=on
		[ "$mode" = nosched ] && sv=off
		EGRESS_SCHED=$sv "$tmp/egress" watch --pid "$child" "${stacks[@]}" --format json >"$out.json" 2>"$out.err" &
		eg=$!
		pids+=("$eg")
	fi
	local c0="0 0" b0="0 0"
	# The load starts after DELAY: count egress's CPU and the programs' from then.
	[ -n "$eg" ] && { sleep 1.5; c0=$(cpu "$eg"); b0=$(bpfns "$eg"); }
	wait "$lp"
	local eguser=0 egsys=0 rss=0 runs=0 ns=0 lost=0 reported=0
	if [ -n "$eg" ]; then
		read -r u1 s1 <<<"$(cpu "$eg")"
		read -r u0 s0 <<<"$c0"
		eguser=$(awk -v a="$u1" -v b="$u0" 'BEGIN { print a - b }')
		egsys=$(awk -v a="$s1" -v b="$s0" 'BEGIN { print a - b }')
		rss=$(hwm "$eg")
		read -r runs ns <<<"$(bpfns "$eg")"
		read -r r0 n0 <<<"$b0"
		runs=$((runs - r0)) ns=$((ns - n0))
		kill -TERM "$eg"
		wait "$eg" || true
		if [ "$mode" != agent ]; then
			lost=$(jq '.stats.events_lost' "$out.json")
			reported=$(jq '[.connections[].count] | add // 0' "$out.json")
		else
			lost=$(tail -n 1 "$out.jsonl" | jq '.stats.events_lost')
			reported=$(grep -c '"type":"connection"' "$out.jsonl" || true)
		fi
	fi
	read -r lu ls <"$out.time"
	printf '%s %s %s %s %s %s %s %s %s %s %s %s\n' "$mode" "$rate" "$(rate_of "$out.load")" "$lu" "$ls" \
		"$eguser" "$egsys" "$rss" "$runs" "$ns" "$lost" "$reported" >"$out.row"
}

echo "bench-watch: $RUNS rounds of $DURATION per mode ($MODES) and rate ($RATES), $WORKERS workers, loopback; kernel $(uname -r), $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
	for rate in $RATES; do
		for mode in $MODES; do
			run "$mode" "$tmp/$mode-$rate-$i" "$rate"
		done
	done
done

echo
echo "mode    rate    achieved/s  load_user_s load_sys_s  egress_user_% egress_sys_% egress_peak_rss_MiB  bpf_runs  bpf_ns_per_run bpf_%_of_core  lost  reported"
for rate in $RATES; do
	for mode in $MODES; do
		for i in $(seq "$RUNS"); do
			read -r m r got lu ls eu es rss runs ns lost rep <"$tmp/$mode-$rate-$i.row"
			awk -v m="$m" -v r="$r" -v got="$got" -v lu="$lu" -v ls="$ls" -v eu="$eu" -v es="$es" -v rss="$rss" \
				-v runs="$runs" -v ns="$ns" -v lost="$lost" -v rep="$rep" -v s="$secs" 'BEGIN {
				per = runs > 0 ? ns / runs : 0
				printf "%-7s %-7s %10.0f  %11.2f %10.2f  %13.1f %12.1f %20s %9d %15.0f %13.1f %5s %9s\n",
					m, r, got, lu, ls, 100 * eu / s, 100 * es / s, rss, runs, per, 100 * ns / 1e9 / s, lost, rep }'
		done
	done
done
echo "(egress CPU is over the load's DURATION; load_user/sys are connload's own, including the tracepoints run in its context;"
echo " bpf_* are the eBPF programs' run time from kernel.bpf_stats_enabled, which itself adds a little per run)"

if [ "$SOAK" -gt 0 ]; then
	echo
	echo "soak: egress agent for $SOAK s under 1000 connects/s; RSS MiB every 10 s"
	"$tmp/egress" agent --loopback --output "$tmp/soak.jsonl" --max-size 50000000 --max-files 1 --summary-every 60s 2>"$tmp/soak.err" &
	eg=$!
	pids+=("$eg")
	sleep 1
	# connload runs at most a minute: chain minutes.
	(for _ in $(seq $(((SOAK + 59) / 60))); do "$tmp/connload" -duration 60s -workers 2 -rate 1000 >>"$tmp/soak.load"; done) &
	lp=$!
	pids+=("$lp")
	while kill -0 "$lp" 2>/dev/null; do
		awk -v t="$(date +%s)" '/^VmRSS/ { printf "%s %.1f\n", t, $2 / 1024 }' "/proc/$eg/status"
		sleep 10
	done
	echo "soak: peak RSS $(hwm "$eg") MiB; CPU $(cpu "$eg") user/system s; $(awk '{ n += $2 } END { print n }' "$tmp/soak.load") connects"
	kill -TERM "$eg"
	wait "$eg" || true
fi
