#!/usr/bin/env bash
# Installs what is missing, configures and builds kbgap.
# Usage: scripts/build.sh [--asan]   (build/ by default, build-asan/ with --asan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

build_dir=build
args=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--asan" ]; then
  build_dir=build-asan
  # -O1, as the sanitizers' docs advise: the suites run 2.2 times faster than at -O0 (four of the
  # slowest tests, one after another: 124 s against 272 s). GCC 12 then warns of
  # maybe-uninitialized members inside std::regex's std::function, a false positive. -g1: line
  # tables only, enough for the sanitizers' stack traces, and quicker to build than -g.
  args=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1 -Wno-maybe-uninitialized"
        -DKBGAP_SANITIZE=ON -DKBGAP_BUILD_BENCH=OFF)
fi
cmake -S . -B "$build_dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
