#!/usr/bin/env bash
# bench-watch.sh: the overhead of `egress watch` on a connect-heavy process.
#
# internal/connload connects to its own loopback listener from WORKERS
# goroutines for DURATION, (1) alone, (2) with egress watch attached, at full
# speed, then (3) watched at a fixed RATE (10,000 connects/s by default) to
# check that nothing is lost. Reports throughput change, egress's CPU, lost
# events and attach time. The watched runs alternate with and without the
# scheduler view (EGRESS_SCHED=off), back to back, and the view's program
# cost per sched_switch is read from the kernel's BPF stats (bpftool). Needs root. Bounded: every run ends after DURATION
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

# watched OUT_PREFIX [connload args...]: one load run with egress attached
# (WATCH_SCHED=off: without the scheduler view).
watched() {
	local out=$1
	shift
	"$tmp/connload" -delay "$DELAY" -duration "$DURATION" -workers "$WORKERS" "$@" >"$out.load" &
	local load=$!
	pids+=("$load")
	EGRESS_SCHED=${WATCH_SCHED:-on} "$tmp/egress" watch --pid "$load" --format json >"$out.json" 2>"$out.err" &
	local eg=$!
	pids+=("$eg")
	wait "$load"
	cpu_ticks "$eg" >"$out.cpu"
	# The scheduler view's cost: ns per sched_switch run, and runs/s.
	if command -v bpftool >/dev/null; then
		bpftool prog show name on_sched_switch -j 2>/dev/null |
			jq -r 'if type == "array" then .[0] else . end | "\(.run_time_ns // 0) \(.run_cnt // 0)"' >"$out.sched" 2>/dev/null || true
	fi
	kill -INT "$eg"
	wait "$eg" || true
}

echo "bench-watch: $RUNS runs of $DURATION, $WORKERS workers, loopback; kernel $(uname -r), $(nproc) CPUs"
base=()
for i in $(seq "$RUNS"); do
	"$tmp/connload" -duration "$DURATION" -workers "$WORKERS" >"$tmp/base$i"
	base+=("$(rate_of "$tmp/base$i")")
done
with=()
nosched=()
for i in $(seq "$RUNS"); do
	WATCH_SCHED=off watched "$tmp/n$i"
	nosched+=("$(rate_of "$tmp/n$i.load")")
	watched "$tmp/w$i"
	with+=("$(rate_of "$tmp/w$i.load")")
done
watched "$tmp/fixed" -rate "$RATE"

secs=$(awk -v d="$DURATION" 'BEGIN { sub(/s$/, "", d); print d }')
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${base[@]}")
w=$(median "${with[@]}")
ns=$(median "${nosched[@]}")
echo "throughput alone:   ${base[*]} connects/s (median $b)"
echo "throughput watched without the scheduler view: ${nosched[*]} connects/s (median $ns)"
echo "throughput watched: ${with[*]} connects/s (median $w)"
awk -v b="$b" -v w="$w" -v n="$ns" 'BEGIN { printf "throughput change:  %+.1f%% (without the scheduler view %+.1f%%)\n", 100 * (w - b) / b, 100 * (n - b) / b }'
for i in $(seq "$RUNS"); do
	printf 'without the scheduler view, run %d: egress CPU %.1f%% of one core over the load\n' "$i" \
		"$(awk -v t="$(cat "$tmp/n$i.cpu")" -v hz="$tck" -v s="$secs" 'BEGIN { print 100 * t / hz / s }')"
	if [ -s "$tmp/w$i.sched" ]; then
		read -r rt rc <"$tmp/w$i.sched"
		awk -v rt="$rt" -v rc="$rc" -v i="$i" 'BEGIN { if (rc > 0) printf "scheduler view, run %d: sched_switch program %d runs, %.0f ns each\n", i, rc, rt / rc }'
	fi
done
for i in $(seq "$RUNS"); do
	printf 'watched run %d: egress CPU %.1f%% of one core over the load, attach %s, events lost %s, connections reported %s\n' "$i" \
		"$(awk -v t="$(cat "$tmp/w$i.cpu")" -v hz="$tck" -v s="$secs" 'BEGIN { print 100 * t / hz / s }')" \
		"$(sed -n 's/.*attached in \([^ ;]*\).*/\1/p' "$tmp/w$i.err")" \
		"$(jq '.stats.events_lost' "$tmp/w$i.json")" \
		"$(jq '[.connections[].count] | add' "$tmp/w$i.json")"
done
printf 'fixed %s connects/s: achieved %s/s, egress CPU %.1f%%, events lost %s, connections reported %s of %s\n' "$RATE" \
	"$(rate_of "$tmp/fixed.load")" \
	"$(awk -v t="$(cat "$tmp/fixed.cpu")" -v hz="$tck" -v s="$secs" 'BEGIN { print 100 * t / hz / s }')" \
	"$(jq '.stats.events_lost' "$tmp/fixed.json")" \
	"$(jq '[.connections[].count] | add' "$tmp/fixed.json")" \
	"$(awk '{ print $2 }' "$tmp/fixed.load")"
