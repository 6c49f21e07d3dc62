#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; build-fuzz/) and runs them.
# Usage: fuzz/run.sh [--seconds N | --cpu-seconds N] [--merge] [target ...]
#   Each target first replays its saved corpus (fuzz/corpus/<target>/, every input must pass),
#   then fuzzes for N seconds (default 30), or until it has used N seconds of CPU (the long run:
#   a fair measure on a shared machine). New inputs go to a scratch directory; with --merge,
#   those that reach new code are added to fuzz/corpus/<target>/ (commit them).
#   A crash, leak, hang (> 10 s) or sanitizer report stops the run: the input is written to
#   fuzz/artifacts/ and the script exits non-zero. Make it a regression test (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
cpu_seconds=
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --cpu-seconds) cpu_seconds="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=()  # every fuzz/fuzz_<name>.cpp
for f in fuzz/fuzz_*.cpp; do n=${f#fuzz/fuzz_}; all+=("${n%.cpp}"); done
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
  limit="${seconds} s"
  [ -z "$cpu_seconds" ] || limit="${cpu_seconds} CPU seconds"
  echo "== fuzz_$t: replaying $(find "$corpus" -type f | wc -l) saved inputs, then $limit"
  common=(-timeout=10 -rss_limit_mb=3072 -artifact_prefix=fuzz/artifacts/"$t"-)
  if ! "$bin" "${common[@]}" -runs=0 "$corpus" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz_$t: a saved input fails (above)" >&2
    exit 1
  fi
  started=$SECONDS
  if [ -z "$cpu_seconds" ]; then
    "$bin" "${common[@]}" -max_total_time="$seconds" "$scratch/$t" "$corpus" >"$log" 2>&1 &
  else
    "$bin" "${common[@]}" -max_total_time=$((cpu_seconds * 20)) "$scratch/$t" "$corpus" \
      >"$log" 2>&1 &
  fi
  pid=$!
  cpu=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    # utime + stime of the fuzzer (fields 14 and 15 of /proc/PID/stat), in seconds.
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) / hz)}' "/proc/$pid/stat" \
      2>/dev/null || echo "$cpu")
    if [ -n "$cpu_seconds" ] && [ "$cpu" -ge "$cpu_seconds" ]; then
      kill -INT "$pid"
      break
    fi
  done
  status=0
  wait "$pid" || status=$?
  # 72: libFuzzer's exit status when interrupted, which is how a CPU-time run ends.
  if [ "$status" != 0 ] && ! { [ "$status" = 72 ] && [ -n "$cpu_seconds" ]; }; then
    tail -n 60 "$log"
    echo "fuzz_$t: failed (status $status); the input is in fuzz/artifacts/ (above)" >&2
    exit 1
  fi
  last=$(grep -E "^#[0-9]+" "$log" | tail -n 1 | cut -c1-120)
  echo "   $((SECONDS - started)) s, ${cpu} CPU s, no failure; last: $last"
  if [ "$merge" = 1 ]; then
    "$bin" -merge=1 "${common[@]}" "$corpus" "$scratch/$t" >>"$log" 2>&1
    echo "   corpus now $(find "$corpus" -type f | wc -l) inputs"
  fi
done
echo "fuzz: no failure in ${targets[*]}"
