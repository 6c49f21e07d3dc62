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
  args=(-DCMAKE_BUILD_TYPE=Debug -DKBGAP_SANITIZE=ON -DKBGAP_BUILD_BENCH=OFF)
fi
cmake -S . -B "$build_dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
