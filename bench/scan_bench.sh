#!/usr/bin/env bash
# Benchmark: `kbgap scan` of one real systeminfo on the full bundled catalog: wall time and peak
# RSS over RUNS runs with the cached index (catalog.index), once without it, and where the time
# goes (`scan --timings`, medians). With WESNG=/path/to/wes.py (WES-NG, github.com/bitsadmin/wesng;
# not a dependency of kbgap) it also runs WES-NG on the same file with the same data's WES-NG
# definitions (data/wesng is not shipped: WESNG_DEFINITIONS, default ../shared/data/wesng/
# definitions.zip), alternating with kbgap in the same run, and gives kbgap's share of its time.
# Usage: [WESNG=...] bench/scan_bench.sh [path/to/kbgap] [runs]   Results: bench/results/scan.txt
set -euo pipefail
cd "$(dirname "$0")/.."
KBGAP=$(realpath "${1:-build/kbgap}")
RUNS=${2:-20}
INVENTORY=data/inventories/10_21H2_x64_pro_systeminfo.txt
OUT=bench/results/scan.txt
WESNG=${WESNG:-}
WESNG_DEFINITIONS=${WESNG_DEFINITIONS:-../shared/data/wesng/definitions.zip}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir -p bench/results
"$KBGAP" --data "$data" catalog stats >/dev/null 2>&1   # import the bundled catalog first

/usr/bin/python3 - "$KBGAP" "$data" "$INVENTORY" "$RUNS" "$WESNG" "$WESNG_DEFINITIONS" <<'PY' | tee "$OUT"
import os, re, resource, statistics, subprocess, sys, time
kbgap, data, inventory, runs, wesng, definitions = sys.argv[1:7]
runs = int(runs)

def timed(cmd):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, p

def peak_kib(cmd):
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    return int(p.stderr.strip().splitlines()[-1])

scan = [kbgap, "--data", data, "scan", inventory]
print(f"# kbgap scan of one systeminfo ({inventory}), full bundled catalog")
print(f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}  host: {os.cpu_count()} cores  "
      f"command: bench/scan_bench.sh {kbgap} {runs}" + (f"  WESNG={wesng}" if wesng else ""))
os.remove(os.path.join(data, "catalog.index")) if os.path.exists(os.path.join(data, "catalog.index")) else None
cold, _ = timed(scan)
print(f"without the cached index (builds and writes it): {cold:.3f} s wall")
kb, wes, phases = [], [], {}
for i in range(runs):
    t, p = timed(scan + ["--timings"])
    kb.append(t)
    for name, ms in re.findall(r"([a-z ]+) ([0-9.]+) ms", p.stderr.split("timings:")[-1]):
        phases.setdefault(name.strip(), []).append(float(ms))
    if wesng and i < max(3, runs // 5):  # WES-NG takes seconds: fewer runs, interleaved
        t, p = timed(["/usr/bin/python3", wesng, "--definitions", definitions, inventory])
        if p.returncode != 0:
            sys.exit(f"WES-NG failed: {p.stderr[-300:]}")
        wes.append(t)
kb.sort()
print(f"with the cached index, {runs} runs: min {kb[0]*1000:.1f} ms, median "
      f"{statistics.median(kb)*1000:.1f} ms, max {kb[-1]*1000:.1f} ms wall, "
      f"{peak_kib(scan)/1024:.1f} MiB peak RSS")
print("where the time goes (scan --timings, medians): " + "; ".join(
    f"{name} {statistics.median(v):.1f} ms" for name, v in phases.items()) +
    "; the rest is the process starting and ending")
if wes:
    w = statistics.median(wes)
    print(f"WES-NG on the same file, {len(wes)} runs interleaved: median {w:.2f} s; kbgap's median "
          f"is {statistics.median(kb) / w * 100:.2f}% of it")
PY
