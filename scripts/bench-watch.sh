#!/usr/bin/env bash
# bench-watch.sh: the overhead of `egress watch` on a connect-heavy process.
#
# internal/connload connects to its own loopback listener from WORKERS
# goroutines for DURATION, (1) alone, (2) with egress watch attached, at full
# speed, then (3) watched at a fixed RATE (10,000 connects/s by default) to
# check that nothing is lost. Reports throughput change, egress's CPU, lost
# events and attach time. Every watched run is done twice, back to back:
# without and with --stacks (the user stack of each connect, symbolized), so
# the cost of stacks is measured under the same conditions; a third, without
# the scheduler view (EGRESS_SCHED=off), measures the view, whose program
# cost per sched_switch is also read from the kernel's BPF stats (bpftool).
# Needs root.
# Bounded: every run ends after DURATION
# plus a few seconds; loopback only.
#
#   sudo scripts/bench-watch.sh            # DURATION=5s WORKERS=4 RUNS=3 RATE=10000
set -euo pipefail

DURATION=${DURATION:-5s}
WORKERS=${WORKERS:-4}
RUNS=${RUNS:-3}
RATE=${RATE:-10000}
DELAY=1.5s # time for watch to attach before the load starts

if [ "$(id -u)" != 0 ]; then
	echo "bench-watch: needs root (eBPF and AF_PACKET)" >&2
	exit 2
fi
for tool in go jq awk; do
	command -v "$tool" >/dev/null || { echo "bench-watch: needs $tool" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
stats_was=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null || true
trap 'cleanup; sysctl -qw kernel.bpf_stats_enabled="$stats_was" 2>/dev/null || true' EXIT
CGO_ENABLED=0 go build -o "$tmp/egress" ./cmd/egress
CGO_ENABLED=0 go build -o "$tmp/connload" ./internal/connload
tck=$(getconf CLK_TCK)

rate_of() { awk '{for (i = 1; i < NF; i++) if ($i == "per_second") print $(i + 1)}' "$1"; }

# cpu_ticks PID: user+system clock ticks used so far.
cpu_ticks() { awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

# watched OUT_PREFIX [connload args...]: one load run with egress attached,
# with the extra watch flags in $WATCH_FLAGS (WATCH_SCHED=off: without the
# scheduler view).
WATCH_FLAGS=""
watched() {
	local out=$1
	shift
	"$tmp/connload" -delay "$DELAY" -duration "$DURATION" -workers "$WORKERS" "$@" >"$out.load" &
	local load=$!
	pids+=("$load")
	# shellcheck disable=SC2086
	EGRESS_SCHED=${WATCH_SCHED:-on} "$tmp/egress" watch --pid "$load" --format json $WATCH_FLAGS >"$out.json" 2>"$out.err" &
	local eg=$!
	pids+=("$eg")
	wait "$load"
	cpu_ticks "$eg" >"$out.cpu"
	# The scheduler view's cost: ns per sched_switch run.
	if command -v bpftool >/dev/null; then
		bpftool prog show name on_sched_switch -j 2>/dev/null |
			jq -r 'if type == "array" then .[0] else . end | "\(.run_time_ns // 0) \(.run_cnt // 0)"' >"$out.sched" 2>/dev/null || true
	fi
	kill -INT "$eg"
	wait "$eg" || true
}

echo "bench-watch: $RUNS runs of $DURATION, $WORKERS workers, loopback; kernel $(uname -r), $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
base=()
with=()
stk=()
nosched=()
# Interleaved, so a change in the machine's load hits all three alike.
for i in $(seq "$RUNS"); do
	"$tmp/connload" -duration "$DURATION" -workers "$WORKERS" >"$tmp/base$i"
	base+=("$(rate_of "$tmp/base$i")")
	WATCH_FLAGS="" watched "$tmp/w$i"
	with+=("$(rate_of "$tmp/w$i.load")")
	WATCH_FLAGS="--stacks" watched "$tmp/s$i"
	stk+=("$(rate_of "$tmp/s$i.load")")
	WATCH_SCHED=off WATCH_FLAGS="" watched "$tmp/n$i"
	nosched+=("$(rate_of "$tmp/n$i.load")")
done
WATCH_FLAGS="" watched "$tmp/fixed" -rate "$RATE"
WATCH_FLAGS="--stacks" watched "$tmp/sfixed" -rate "$RATE"

secs=$(awk -v d="$DURATION" 'BEGIN { sub(/s$/, "", d); print d }')
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${base[@]}")
w=$(median "${with[@]}")
s=$(median "${stk[@]}")
ns=$(median "${nosched[@]}")
echo "throughput alone:   ${base[*]} connects/s (median $b)"
echo "watched, no scheduler view: ${nosched[*]} connects/s (median $ns)"
echo "throughput watched: ${with[*]} connects/s (median $w)"
echo "watched --stacks:   ${stk[*]} connects/s (median $s)"
awk -v b="$b" -v w="$w" 'BEGIN { printf "throughput change:  %+.1f%%\n", 100 * (w - b) / b }'
awk -v b="$b" -v s="$s" -v w="$w" 'BEGIN { printf "with --stacks:      %+.1f%% (against watch without stacks: %+.1f%%)\n", 100 * (s - b) / b, 100 * (s - w) / w }'
awk -v b="$b" -v n="$ns" -v w="$w" 'BEGIN { printf "scheduler view:     %+.1f%% against watch without it\n", 100 * (w - n) / n }'
cpu() { awk -v t="$(cat "$1")" -v hz="$tck" -v s="$secs" 'BEGIN { print 100 * t / hz / s }'; }
for i in $(seq "$RUNS"); do
	printf 'watched without the scheduler view, run %d: egress CPU %.1f%% of one core over the load\n' "$i" "$(cpu "$tmp/n$i.cpu")"
	if [ -s "$tmp/w$i.sched" ]; then
		read -r rt rc <"$tmp/w$i.sched"
		awk -v rt="$rt" -v rc="$rc" -v i="$i" 'BEGIN { if (rc > 0) printf "scheduler view, run %d: sched_switch program %d runs, %.0f ns each\n", i, rc, rt / rc }'
	fi
done
for p in w s; do
	label=watched
	[ "$p" = s ] && label="watched --stacks"
	for i in $(seq "$RUNS"); do
		printf '%s run %d: egress CPU %.1f%% of one core over the load, attach %s, events lost %s, connections reported %s, with a call site %s\n' \
			"$label" "$i" "$(cpu "$tmp/$p$i.cpu")" \
			"$(sed -n 's/.*attached in \([^ ;]*\).*/\1/p' "$tmp/$p$i.err")" \
			"$(jq '.stats.events_lost' "$tmp/$p$i.json")" \
			"$(jq '[.connections[].count] | add' "$tmp/$p$i.json")" \
			"$(jq '[.connections[] | select(.called_from != null) | .count] | add // 0' "$tmp/$p$i.json")"
	done
done
for f in fixed sfixed; do
	label=fixed
	[ "$f" = sfixed ] && label="--stacks fixed"
	printf '%s %s connects/s: achieved %s/s, egress CPU %.1f%%, events lost %s, connections reported %s of %s\n' \
		"$label" "$RATE" "$(rate_of "$tmp/$f.load")" "$(cpu "$tmp/$f.cpu")" \
		"$(jq '.stats.events_lost' "$tmp/$f.json")" \
		"$(jq '[.connections[].count] | add' "$tmp/$f.json")" \
		"$(awk '{ print $2 }' "$tmp/$f.load")"
done
