#!/usr/bin/env bash
# Benchmark: wall time and peak RSS of `kbgap scan` of one real systeminfo on the full bundled
# catalog, RUNS times with the cached index (catalog.index) and once without it.
# Usage: bench/scan_bench.sh [path/to/kbgap] [runs]   Results: bench/results/scan.txt
set -euo pipefail
cd "$(dirname "$0")/.."
KBGAP=${1:-build/kbgap}
RUNS=${2:-20}
INVENTORY=data/inventories/10_21H2_x64_pro_systeminfo.txt
OUT=bench/results/scan.txt
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir -p bench/results
"$KBGAP" --data "$data" catalog stats >/dev/null 2>&1   # import the bundled catalog first

run() {
  /usr/bin/time -f '%e %M' -o "$data/time" "$KBGAP" --data "$data" scan "$INVENTORY" >/dev/null
  cat "$data/time"
}
{
  echo "# kbgap scan of one systeminfo ($INVENTORY), full bundled catalog"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores  command: bench/scan_bench.sh $KBGAP $RUNS"
  rm -f "$data/catalog.index"
  read -r wall kib < <(run)
  printf 'without the cached index (builds and writes it): %.3f s wall, %.1f MiB peak RSS\n' "$wall" "$(echo "$kib/1024" | bc -l)"
  for i in $(seq 1 "$RUNS"); do run; done | sort -n | awk -v runs="$RUNS" '
    { wall[NR] = $1; if ($2 > rss) rss = $2 }
    END { printf "with the cached index, %d runs: min %.3f s, median %.3f s, max %.3f s wall, %.1f MiB peak RSS\n",
                 runs, wall[1], wall[int((NR + 1) / 2)], wall[NR], rss / 1024 }'
} | tee "$OUT"
