#!/usr/bin/env bash
# History jobs under load (issue 19): a private PostgreSQL with the CBPM3 day
# (examples/cbpm3/fill.sql), `streamprep serve` (release), 10 day-long history jobs at once
# (1 s means then 2,000 points, different columns each) while one client asks the project
# list in a loop: the list's p50/p99 latency during the jobs and serve's peak resident memory
# (bench/history_load.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
. bench/pg_lib.sh
psql -X -q -d "$url" -v day=2026-03-01 -f examples/cbpm3/fill.sql 2>/dev/null
mkdir -p "$tmp/serve"
STREAMPREP_ADMIN_PASSWORD="the admin's long password" "$bin" serve --addr 127.0.0.1:0 \
  --data-dir "$tmp/serve/store" --files-dir "$tmp/serve" 2> "$tmp/serve.log" &
serve=$!
trap 'kill $serve 2>/dev/null; as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q "http://" "$tmp/serve.log" && break; sleep 0.1; done
addr=$(grep -o "http://[0-9.:]*" "$tmp/serve.log" | head -1 | sed 's|http://||')
python3 bench/history_load.py "$addr" "$url" "$serve"
