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
exclude=()
if [ "${1:-}" = "--asan" ]; then
  # Two suites run in release only, for CI's 45 minutes: the HTTP suite again on PostgreSQL (its
  # C++ on PostgreSQL runs here in the store contract tests and postgres_servers) and nginx in
  # front of two servers (the same server code as postgres_servers). Under the sanitizers they
  # took 165 s and about 60 s.
  exclude=(-E '^(api_over_http_postgres|nginx_servers)$')
fi
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "${exclude[@]}"
