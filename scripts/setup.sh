#!/usr/bin/env bash
# Installs every Debian 12 package kbgap needs to build, test and benchmark. Idempotent:
# packages already present are not reinstalled; runs apt-get as root, through sudo otherwise.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format
  # fuzzing: clang with libFuzzer and the sanitizers runtimes (fuzz/run.sh)
  clang libclang-rt-14-dev
  # libraries
  libboost1.81-dev libboost-json1.81-dev
  libpugixml-dev libsqlite3-dev libcli11-dev libspdlog-dev libfmt-dev
  libssl-dev libpq-dev libtomlplusplus-dev
  # the PostgreSQL backend's tests start a throwaway server of their own (scripts/pg_server.sh)
  postgresql
  # fetching (catalog sync, issuers' JWKS) and archives (catalog import and fetch)
  libcurl4-openssl-dev libarchive-dev
  # WES-NG's definitions (catalog before 2016) are CSV
  libcsv-dev
  # tests and benchmarks (the API tests call the server with curl and Python requests)
  libgtest-dev libgmock-dev libbenchmark-dev sqlite3 zstd time bc curl python3 python3-requests
  openssl
  # the HTTP benchmark: wrk against kbgap and, for scale, nginx serving the same body
  wrk nginx-light
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
