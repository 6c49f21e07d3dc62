# Sourced by the benchmark scripts: starts `kbgap serve` on a loopback port over a data directory,
# without rate limits (Defender's 100 calls a minute would stop any load test) and without catalog
# syncs (a benchmark measures one catalog), quiet.
# Usage: start_kbgap KBGAP DATA_DIR WORK_DIR   sets kbgap_pid and port; the log is WORK_DIR/serve.log
start_kbgap() {
  local kbgap=$1 data=$2 work=$3
  rm -f "$work/port"
  KBGAP_CATALOG_SYNC_INTERVAL=0 \
    KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE=0 KBGAP_RATE_LIMITS_MACHINES_PER_HOUR=0 \
    KBGAP_RATE_LIMITS_SOFTWARE_PER_MINUTE=0 KBGAP_RATE_LIMITS_SOFTWARE_PER_HOUR=0 \
    KBGAP_RATE_LIMITS_VULNERABILITIES_PER_MINUTE=0 KBGAP_RATE_LIMITS_VULNERABILITIES_PER_HOUR=0 \
    "$kbgap" --data "$data" serve --quiet --listen 127.0.0.1:0 --port-file "$work/port" \
    2>"$work/serve.log" &
  kbgap_pid=$!
  for _ in $(seq 600); do [ -f "$work/port" ] && break; sleep 0.1; done
  [ -f "$work/port" ] || { cat "$work/serve.log" >&2; echo "kbgap serve did not start" >&2; return 1; }
  port=$(cat "$work/port")
}
