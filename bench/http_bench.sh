#!/usr/bin/env bash
# getmissingkbs over HTTP: wrk on loopback against kbgap serving a real device, and in the same
# run against nginx serving the identical response body as a static file, a valid token on every
# request to both. Alternates nginx and kbgap ROUNDS times. Result: bench/results/http.txt.
# Usage: bench/http_bench.sh [path/to/kbgap] [rounds] [seconds per run]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_lib.sh
KBGAP=$(realpath "${1:-build/kbgap}")
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-10}
OUT=bench/results/http.txt
work=$(mktemp -d)
cleanup() {
  [ -n "${kbgap_pid:-}" ] && kill "$kbgap_pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

inventory=data/inventories/10_21H2_x64_pro_systeminfo.txt
"$KBGAP" --data "$work/data" devices import "$inventory" >/dev/null
start_kbgap "$KBGAP" "$work/data" "$work"
token=$("$KBGAP" --data "$work/data" token --role Software.Read.All --ttl 2h --app bench)
id=$("$KBGAP" --data "$work/data" devices list | awk 'NR == 2 {print $1}')
path="/api/machines/$id/getmissingkbs"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" >"$work/body.json"

# nginx: the same bytes, the same content type, no access log, as many workers as cores.
nginx_port=$((port + 1))
mkdir -p "$work/nginx"
chmod 755 "$work" && chmod 644 "$work/body.json"  # nginx workers may run as another user
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$nginx_port;
    location = $path {
      default_type "application/json; odata.metadata=minimal; charset=utf-8";
      add_header OData-Version 4.0;
      alias $work/body.json;
    }
  }
}
CONF
nginx -c "$work/nginx.conf"
sleep 0.5
curl -sS -H "Authorization: Bearer $token" "http://127.0.0.1:$nginx_port$path" >"$work/nginx-body.json" || { cat "$work/nginx/error.log"; exit 1; }
cmp "$work/nginx-body.json" "$work/body.json" || { head -c 300 "$work/nginx-body.json"; cat "$work/nginx/error.log"; exit 1; }

run() {  # name port -> "requests/s p99-ms"
  wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$2$path" >"$work/wrk.$1" 2>&1
  local rps p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.$1")
  p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}' "$work/wrk.$1")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.$1" | tr '\n' ' ')
  echo "$rps $p99 ${errors:-}"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores  command: bench/http_bench.sh $KBGAP $ROUNDS $SECONDS_PER_RUN"
  echo "wrk -t2 -c64 -d${SECONDS_PER_RUN}s --latency, GET $path ($(wc -c <"$work/body.json") bytes, device from $inventory), token on every request"
  for round in $(seq "$ROUNDS"); do
    read -r n_rps n_p99 n_err < <(run nginx "$nginx_port")
    read -r k_rps k_p99 k_err < <(run kbgap "$port")
    echo "round $round: nginx $n_rps req/s p99 ${n_p99} ms ${n_err:-}| kbgap $k_rps req/s p99 ${k_p99} ms ${k_err:-}| kbgap/nginx $(echo "scale=2; $k_rps / $n_rps" | bc) req/s, $(echo "scale=2; $k_p99 / $n_p99" | bc) p99"
  done
} | tee "$OUT"
