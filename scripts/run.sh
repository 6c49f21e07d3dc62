#!/usr/bin/env bash
# The README's first command: builds kbgap and starts it on its embedded default (data in
# ./kbgap-data, or $KBGAP_DATA). Until the server exists, that is: load the bundled MSRC
# catalog when the data directory has none, and print the catalog's stats.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec ./build/kbgap catalog stats
