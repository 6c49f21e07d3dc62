#!/usr/bin/env bash
# The README's first command: installs what is missing, builds kbgap and starts its server on the
# embedded default: the data directory ./kbgap-data (or $KBGAP_DATA) with the bundled MSRC catalog
# and, the first time, a demo fleet made of the real inventories in data/inventories. Prints a
# token and a ready curl line. Listens on 127.0.0.1:8080 (or $KBGAP_LISTEN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
kbgap=./build/kbgap
data=${KBGAP_DATA:-kbgap-data}
listen=${KBGAP_LISTEN:-127.0.0.1:8080}

if [ "$("$kbgap" --data "$data" devices list --format json)" = "[]" ]; then
  echo "kbgap: importing the demo fleet (the real inventories in data/inventories)" >&2
  for f in data/inventories/*systeminfo*.txt; do
    qfe="${f/_systeminfo*/_qfe.txt}"
    if [ -f "$qfe" ]; then
      "$kbgap" --data "$data" devices import "$f" "$qfe" >/dev/null
    else
      "$kbgap" --data "$data" devices import "$f" >/dev/null
    fi
  done
fi
token=$("$kbgap" --data "$data" token --ttl 12h --app demo --role Software.Read.All \
  --role Machine.Read.All --role Vulnerability.Read.All)
# (awk reads to the end: quitting early could kill kbgap with SIGPIPE, and pipefail the script)
device=$("$kbgap" --data "$data" devices list | awk '/Windows 10/ && !id {id = $1} END {print id}')
cat <<MSG

kbgap serves $("$kbgap" --data "$data" devices list | tail -n +2 | wc -l) real devices on http://$listen
A token valid for 12 hours (Software, Machine and Vulnerability read permissions):

$token

The security updates one of the devices is missing:

curl -s -H "Authorization: Bearer $token" http://$listen/api/machines/$device/getmissingkbs

MSG
exec "$kbgap" --data "$data" serve --listen "$listen"
