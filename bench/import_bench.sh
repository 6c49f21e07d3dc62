#!/usr/bin/env bash
# Benchmark: time and peak memory of importing all 127 bundled MSRC documents (243 MB of XML)
# into an empty catalog, from the .tar.zst and from the unpacked XML files, RUNS times each; and
# WES-NG's rows before 2016 (the bundled extract) on their own, and both as a first start does.
# Usage: bench/import_bench.sh [path/to/kbgap] [runs]   Results: bench/results/import.txt
set -euo pipefail
cd "$(dirname "$0")/.."
KBGAP=${1:-build/kbgap}
RUNS=${2:-3}
ARCHIVE=data/catalog/cvrf-2016-2026.tar.zst
OUT=bench/results/import.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results "$work/xml"
tar --zstd -xf "$ARCHIVE" -C "$work/xml"
xml_bytes=$(du -sb "$work/xml" | cut -f1)

measure() {  # label, then the import arguments
  local label=$1; shift
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$work/data"
    /usr/bin/time -f '%e %M' -o "$work/time" "$KBGAP" --data "$work/data" catalog import "$@" >/dev/null
    read -r wall kib <"$work/time"
    printf '%-22s run %d: %6.2f s wall, %7.1f MiB peak RSS\n' "$label" "$i" "$wall" "$(echo "$kib/1024" | bc -l)"
  done
}

{
  echo "# kbgap catalog import benchmark"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "kbgap: $("$KBGAP" --version)  input: 127 documents, $xml_bytes bytes of XML"
  echo "command: bench/import_bench.sh $KBGAP $RUNS"
  measure "from .tar.zst" "$ARCHIVE"
  measure "from unpacked XML dir" "$work/xml"
  measure "WES-NG before 2016" data/catalog/wesng-before-2016.zip
  for i in $(seq 1 "$RUNS"); do  # a first start: the bundled catalog and the bulletins before 2016
    rm -rf "$work/data"
    /usr/bin/time -f '%e %M' -o "$work/time" "$KBGAP" --data "$work/data" catalog stats >/dev/null 2>&1
    read -r wall kib <"$work/time"
    printf '%-22s run %d: %6.2f s wall, %7.1f MiB peak RSS\n' "first start (both)" "$i" "$wall" "$(echo "$kib/1024" | bc -l)"
  done
} | tee "$OUT"
