#!/usr/bin/env bash
# bench-ab.sh OLD NEW FILE [RUNS]: compare two egress binaries back to back
# on the same capture, pinned to CPU 0, alternating old and new RUNS times
# (default 5), and print each run's wall and user time, peak RSS and the
# load average, then the medians and minimums. On a shared machine the
# load moves both alike; the minimum is the least disturbed run.
#
# Exit codes: 0 measured, 1 a run failed, 2 bad usage or a tool missing.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bench-ab.sh OLD NEW FILE [RUNS]" >&2; exit 2; }
old=$1 new=$2 file=$3 runs=${4:-5}
[ -x /usr/bin/time ] || { echo "bench-ab: GNU time is missing: apt-get install time" >&2; exit 2; }
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$runs"); do
	for b in old new; do
		bin=$old
		[ "$b" = new ] && bin=$new
		/usr/bin/time -f "%e %U %M" -o "$out/t" timeout 900 "${pin[@]}" "$bin" replay "$file" --format json >/dev/null
		read -r wall user kib <"$out/t"
		load=$(cut -d' ' -f1 /proc/loadavg)
		echo "$b $wall $user $kib $load" | tee -a "$out/all" | awk '{ printf "%-3s run: %6.2f s wall %6.2f s user %6.1f MiB load %s\n", $1, $2, $3, $4 / 1024, $5 }'
	done
done
for b in old new; do
	awk -v b="$b" '$1 == b { n += 0; w[n] = $2; u[n] = $3; r[n] = $4; n++
			if (n == 1 || $2 < mw) mw = $2
			if (n == 1 || $3 < mu) mu = $3 }
		function med(a, n,   i, j, t) { for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }; return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2 }
		END { printf "%s: median %.2f s wall (min %.2f), median %.2f s user (min %.2f), median %.1f MiB\n", b, med(w, n), mw, med(u, n), mu, med(r, n) / 1024 }' "$out/all"
done
