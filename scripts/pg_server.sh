#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, from Debian's packages: initdb in a
# folder, listening on 127.0.0.1 only, on a free port. Nothing of the machine's own PostgreSQL is
# used or changed.
#   scripts/pg_server.sh start DIR   starts it (creating DIR) and writes its URL to DIR/url
#   scripts/pg_server.sh stop DIR    stops it and removes DIR
#   scripts/pg_server.sh url DIR     prints the URL
#   scripts/pg_server.sh down DIR    stops the server, keeping its data and port (an outage)
#   scripts/pg_server.sh up DIR      starts it again after `down`
# PostgreSQL refuses to run as root: as root, the server runs as Debian's `postgres` user.
set -euo pipefail

cmd=${1:?usage: pg_server.sh start|stop|url DIR}
dir=${2:?usage: pg_server.sh start|stop|url DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "pg_server.sh: PostgreSQL's server is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then as_owner=(runuser -u postgres --); fi

case "$cmd" in
  start)
    if [ -f "$dir/url" ] && "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      exit 0  # already running
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U kbgap -A trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # fsync off: a test server's data need not outlive a power cut; everything else as shipped.
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://kbgap@127.0.0.1:$port/postgres" >"$dir/url"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  url)
    cat "$dir/url"
    ;;
  down)
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  up)
    port=$(sed -E 's#.*:([0-9]+)/.*#\1#' "$dir/url")
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  *)
    echo "pg_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
