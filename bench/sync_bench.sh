#!/usr/bin/env bash
# Benchmark: `kbgap catalog sync` against a loopback stand-in for MSRC's CVRF API
# (tests/cvrf_server.py serving the 127 bundled documents): a full sync into an empty catalog
# (--all), then an incremental one after one month was revised, then a server holding a fleet
# that syncs that revision by itself (how long the new catalog and the fleet's evaluation take).
# Usage: bench/sync_bench.sh [path/to/kbgap] [runs] [fleet copies]   Results: bench/results/sync.txt
set -euo pipefail
cd "$(dirname "$0")/.."
KBGAP=$(realpath "${1:-build/kbgap}")
RUNS=${2:-3}
COPIES=${3:-100}   # the fleet: each real inventory this many times
OUT=bench/results/sync.txt
work=$(mktemp -d)
server_pid=
kbgap_pid=
cleanup() {
  [ -n "$kbgap_pid" ] && kill "$kbgap_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p bench/results "$work/docs"
tar --zstd -xf data/catalog/cvrf-2016-2026.tar.zst -C "$work/docs" --strip-components=1
/usr/bin/python3 tests/cvrf_server.py "$work/docs" --port-file "$work/cvrf-port" &
server_pid=$!
for _ in $(seq 100); do [ -f "$work/cvrf-port" ] && break; sleep 0.1; done
source_url="http://127.0.0.1:$(cat "$work/cvrf-port")"
export CI=true

revise() {  # a later revision of 2026-May: a new current release date and revision number, and
            # its first CVE fixed by a Windows update (a KB 5xxxxxx) rescored (9.<the stamp's last
            # digit of the day>) on every product, as MSRC's revisions do
  /usr/bin/python3 - "$work/docs/cvrfDocument-2026-May.xml" "$1" <<'PY'
import re, sys
path, stamp = sys.argv[1], sys.argv[2]
xml = open(path, encoding="utf-8").read()
xml = re.sub(r"<cvrf:CurrentReleaseDate>[^<]*<", f"<cvrf:CurrentReleaseDate>{stamp}<", xml, count=1)
xml = re.sub(r"(<cvrf:Revision>\s*<cvrf:Number>)[^<]*", r"\g<1>" + stamp[:10].replace("-", ""), xml, count=1)
def rescore(m):
    return re.sub(r"<vuln:BaseScore>[^<]*<", f"<vuln:BaseScore>9.{stamp[9]}<", m.group(0))
vulns = list(re.finditer(r"<vuln:Vulnerability\b.*?</vuln:Vulnerability>", xml, re.S))
first = next(v for v in vulns if re.search(r"<vuln:Description>5\d{6}</vuln:Description>", v.group(0)))
xml = xml[:first.start()] + rescore(first) + xml[first.end():]
open(path, "w", encoding="utf-8").write(xml)
PY
}

{
  echo "# kbgap catalog sync benchmark (loopback HTTP, tests/cvrf_server.py)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores  command: bench/sync_bench.sh $KBGAP $RUNS $COPIES"
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$work/data"
    /usr/bin/time -f '%e %M' -o "$work/time" \
      "$KBGAP" --data "$work/data" catalog sync --all --source "$source_url" >"$work/out"
    read -r wall kib <"$work/time"
    printf 'full sync (127 months, --all)  run %d: %6.2f s wall, %6.1f MiB peak RSS; %s\n' \
      "$i" "$wall" "$(echo "$kib/1024" | bc -l)" "$(head -1 "$work/out" | sed 's/.* in [0-9.]* s: //')"
  done
  for i in $(seq 1 "$RUNS"); do
    revise "2026-12-0${i}T08:00:00"
    /usr/bin/time -f '%e %M' -o "$work/time" \
      "$KBGAP" --data "$work/data" catalog sync --source "$source_url" >"$work/out"
    read -r wall kib <"$work/time"
    printf 'one revised month               run %d: %6.2f s wall, %6.1f MiB peak RSS; %s\n' \
      "$i" "$wall" "$(echo "$kib/1024" | bc -l)" "$(head -1 "$work/out" | sed 's/.* in [0-9.]* s: //')"
  done

  # A server with a fleet syncs a revision by itself: its log says how long it took.
  inventories=()
  for f in data/inventories/*_systeminfo*.txt; do inventories+=("$f"); done
  mkdir -p "$work/fleet"
  for c in $(seq 1 "$COPIES"); do
    for f in "${inventories[@]}"; do
      # each copy its own device: another host name
      sed "s/^\(Host Name:[[:space:]]*\)\(.*\)$/\1\2-$c/" "$f" >"$work/fleet/$c-$(basename "$f")"
    done
  done
  "$KBGAP" --data "$work/data" devices import "$work/fleet"/* >/dev/null
  devices=$("$KBGAP" --data "$work/data" devices list --format json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  revise "2026-12-20T08:00:00"
  KBGAP_CATALOG_SYNC_INTERVAL=3600 KBGAP_CATALOG_SOURCE="$source_url" \
    "$KBGAP" --data "$work/data" serve --quiet --listen 127.0.0.1:0 --port-file "$work/port" \
    >/dev/null 2>"$work/serve.log" &
  kbgap_pid=$!
  for _ in $(seq 600); do grep -q "catalog sync from" "$work/serve.log" && break; sleep 0.1; done
  for _ in $(seq 600); do grep -q "new catalog served" "$work/serve.log" && break; sleep 0.1; done
  echo "server with $devices devices, one revised month at start: $(grep "catalog sync from" "$work/serve.log" | sed 's/^kbgap: //')"
  echo "  $(grep -E "new catalog (served|touches)" "$work/serve.log" | sed 's/^kbgap: //' | paste -sd ' ')"
} | tee "$OUT"
