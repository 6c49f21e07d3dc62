#!/usr/bin/env bash
# Reads through nginx (Debian's nginx-light) as the load balancer in front of one, then two
# `kbgap serve` on one PostgreSQL holding DEVICES devices (docs/scaling.md): wrk on loopback asks
# for one device's missing KBs, a valid token on every request; also one server without nginx,
# for scale. Alternates the three ROUNDS times. Also each server's resident memory with the fleet
# loaded and after the reads. Everything (PostgreSQL, nginx, the servers, wrk) shares this
# machine's cores, so two servers cannot show more than the cores allow.
# Usage: bench/lb_bench.sh [path/to/kbgap] [devices] [rounds] [seconds per run]
# Result: appended to bench/results/lb.txt
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_lib.sh
KBGAP=$(realpath "${1:-build/kbgap}")
DEVICES=${2:-1000000}
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-10}
OUT=bench/results/lb.txt
work=$(mktemp -d)
chmod 755 "$work"  # PostgreSQL runs as another user when this runs as root (scripts/pg_server.sh)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  bash scripts/pg_server.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/pg_server.sh start "$work/pg" >/dev/null
export KBGAP_STORAGE_URL
KBGAP_STORAGE_URL=$(cat "$work/pg/url")

# The fleet: the write benchmark's devices (Windows 10, ten builds), in files of 50,000.
python3 - "$work" "$DEVICES" <<'EOF'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
builds = ["10.0.19045.%d" % r for r in (3803, 4046, 4170, 4291, 4412, 4529, 4651, 4780, 4894, 5011)]
for start in range(0, n, 50000):
    with open("%s/devices-%07d.json" % (work, start), "w") as f:
        json.dump([{"id": "%040x" % (i + 1), "computerDnsName": "pc%d" % (i + 1),
                    "osName": "Microsoft Windows 10 Enterprise", "osBuild": builds[i % 10],
                    "osArchitecture": "x64", "installedKbs": ["KB5034122"]}
                   for i in range(start, min(n, start + 50000))], f)
EOF
started=$SECONDS
for f in "$work"/devices-*.json; do
  "$KBGAP" --data "$work/data" devices import "$f" >/dev/null
  rm "$f"
done
import_seconds=$((SECONDS - started))

rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$1/status"; }
ports=()
for n in 1 2; do
  mkdir -p "$work/s$n"
  started=$SECONDS
  start_kbgap "$KBGAP" "$work/data" "$work/s$n"
  pids+=("$kbgap_pid")
  ports+=("$port")
  echo "server $n: loaded in $((SECONDS - started)) s; $(rss "$kbgap_pid")" >"$work/s$n/loaded"
done
token=$("$KBGAP" --data "$work/data" token --role Software.Read.All --ttl 2h --app bench)
path="/api/machines/$(printf '%040x' 1)/getmissingkbs"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:${ports[0]}$path" >/dev/null

nginx_conf() {  # $1: the upstream servers' ports
  mkdir -p "$work/nginx/logs"
  {
    echo "worker_processes auto; error_log $work/nginx/error.log; pid $work/nginx/nginx.pid;"
    echo "events { worker_connections 1024; }"
    echo "http { access_log off; upstream kbgap {"
    for p in "$@"; do echo "  server 127.0.0.1:$p;"; done
    echo "  keepalive 64; }"
    echo "  server { listen 127.0.0.1:$nginx_port; location / { proxy_pass http://kbgap;"
    echo "    proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
  } >"$work/nginx/nginx.conf"
}
nginx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_wrk() {  # $1: port; prints "req/s p99"
  wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$1$path" >"$work/wrk.txt"
  awk '/Requests\/sec/ {r = $2} /^ +99%/ {p = $2} END {printf "%s req/s p99 %s", r, p}' "$work/wrk.txt"
}
with_nginx() {  # $@: upstream ports
  nginx_conf "$@"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>/dev/null
  for _ in $(seq 50); do [ -f "$work/nginx/nginx.pid" ] && break; sleep 0.1; done
  run_wrk "$nginx_port"
  kill "$(cat "$work/nginx/nginx.pid")"
  for _ in $(seq 50); do [ -f "$work/nginx/nginx.pid" ] || break; sleep 0.1; done
}

{
  echo "date: $(date -u +%FT%TZ)  host: $(nproc) cores  command: bench/lb_bench.sh $KBGAP $DEVICES $ROUNDS $SECONDS_PER_RUN"
  echo "PostgreSQL (scripts/pg_server.sh), $DEVICES devices imported in $import_seconds s (kbgap devices import, files of 50,000); wrk -t2 -c64 -d${SECONDS_PER_RUN}s --latency, GET $path, token on every request"
  cat "$work/s1/loaded" "$work/s2/loaded"
  for round in $(seq "$ROUNDS"); do
    echo "round $round: one server, no nginx: $(run_wrk "${ports[0]}") | nginx, one server: $(with_nginx "${ports[0]}") | nginx, two servers: $(with_nginx "${ports[0]}" "${ports[1]}")"
  done
  echo "after the reads: server 1: $(rss "${pids[0]}")| server 2: $(rss "${pids[1]}")"
} | tee -a "$OUT"
