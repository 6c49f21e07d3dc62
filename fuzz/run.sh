#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; build-fuzz/) and runs them.
# Usage: fuzz/run.sh [--seconds N] [--merge] [target ...]
#   Each target first replays its saved corpus (fuzz/corpus/<target>/, every input must pass),
#   then fuzzes for N seconds (default 30) on one core. New inputs go to a scratch directory;
#   with --merge, those that reach new code are added to fuzz/corpus/<target>/ (commit them).
#   A crash, leak, hang (> 10 s) or sanitizer report stops the run: the input is written to
#   fuzz/artifacts/ and the script exits non-zero. Make it a regression test (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(cvrf inventory_text kbgap_json osquery_json odata_filter jwt jwks request_target)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

bash scripts/setup.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKBGAP_FUZZ=ON -DKBGAP_BUILD_TESTS=OFF -DKBGAP_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p fuzz/artifacts
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  bin=build-fuzz/fuzz/fuzz_$t
  corpus=fuzz/corpus/$t
  log="$scratch/$t.log"
  mkdir -p "$scratch/$t"
  echo "== fuzz_$t: replaying $(find "$corpus" -type f | wc -l) saved inputs, then ${seconds} s"
  common=(-timeout=10 -rss_limit_mb=3072 -artifact_prefix=fuzz/artifacts/"$t"-)
  if ! "$bin" "${common[@]}" -runs=0 "$corpus" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz_$t: a saved input fails (above)" >&2
    exit 1
  fi
  if ! "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
      "$scratch/$t" "$corpus" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz_$t: failed; the input is in fuzz/artifacts/ (above)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | tr '\n' ' '
  grep -E "DONE" "$log" | tail -n 1
  if [ "$merge" = 1 ]; then
    "$bin" -merge=1 "${common[@]}" "$corpus" "$scratch/$t" >>"$log" 2>&1
    echo "   corpus now $(find "$corpus" -type f | wc -l) inputs"
  fi
done
echo "fuzz: no failure in ${targets[*]}"
