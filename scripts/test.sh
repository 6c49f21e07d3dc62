#!/usr/bin/env bash
# The README's second command: builds kbgap and runs every test.
# Usage: scripts/test.sh [--asan]   (--asan: the same tests under ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
build_dir=build
if [ "${1:-}" = "--asan" ]; then
  build_dir=build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Each kill -9 round imports the whole catalog, 3-4 times slower under the sanitizers: two
  # rounds here (the release run does four, tests/crash_test.py), unless asked otherwise.
  export KBGAP_CRASH_ROUNDS="${KBGAP_CRASH_ROUNDS:-2}"
fi
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
