#!/usr/bin/env bash
# Accuracy table: on every real inventory in data/inventories, the KBs and open CVEs reported by
# kbgap's rule and by the two rules other tools use (--rule supersedence: WES-NG's KB list +
# supersedence; --rule build: Fleet's build-number comparison), all on the same bundled catalog.
# Usage: bench/accuracy.sh [path/to/kbgap]   Result: bench/results/accuracy.md (a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
KBGAP=${1:-build/kbgap}
OUT=bench/results/accuracy.md
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir -p bench/results

counts() {  # rule, files... -> "KBs CVEs" of the first device in the table output
  "$KBGAP" --data "$data" scan --rule "$@" >"$data/out" 2>/dev/null
  awk '/missing KBs closing/ {print $1, $5; exit}' "$data/out"
}

{
  echo "| inventory | OS | installed | kbgap KBs | kbgap CVEs | supersedence-only KBs | supersedence-only CVEs | build-only KBs | build-only CVEs |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for f in data/inventories/*systeminfo*.txt; do
    files=("$f")
    qfe="${f/_systeminfo*/_qfe.txt}"
    [ -f "$qfe" ] && files+=("$qfe")
    "$KBGAP" --data "$data" scan "${files[@]}" >"$data/out" 2>/dev/null
    header=$(grep -m1 ' installed KBs' "$data/out")  # the device's line, after the catalog's
    os=$(echo "$header" | sed -E 's/^[^(]*\(([^,]*),.*/\1/')
    installed=$(echo "$header" | sed -E 's/.*, ([0-9]+) installed KBs.*/\1/')
    read -r k_kbs k_cves < <(counts kbgap "${files[@]}")
    read -r s_kbs s_cves < <(counts supersedence "${files[@]}")
    read -r b_kbs b_cves < <(counts build "${files[@]}")
    name=$(basename "$f" .txt)
    [ ${#files[@]} -gt 1 ] && name="$name + qfe"
    echo "| $name | $os | $installed | $k_kbs | $k_cves | $s_kbs | $s_cves | $b_kbs | $b_cves |"
  done
} | tee "$OUT"
