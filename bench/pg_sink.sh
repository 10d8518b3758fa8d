#!/usr/bin/env bash
# Rows/s into PostgreSQL (issue 19): the paper's chain (fillna_zeros, normalizer,
# drop_duplicates) at buffer 1,000, 300,000 Davis rows from a file into a table of a private
# PostgreSQL (Debian's initdb/pg_ctl, a free port, default durability: fsync and synchronous
# commit on), each message one transaction; with dedupe=row (the default: COPY straight into
# the table keyed by a row hash, the staging table and ON CONFLICT only for a message with a
# row already there) and dedupe=none (COPY straight into an unkeyed table); the same chain into
# a file for the rate without a database; and PostgreSQL alone taking the same rows in one
# binary COPY from psql (the server's own ceiling on these cores). Median of 3 each.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
. bench/pg_lib.sh
"$bin" gen --rows 300000 --seed 1 --stations 5 --out "$tmp/in.ndjson"
chain=fillna_zeros,normalizer,drop_duplicates
rate() { "$bin" run --source "file:$tmp/in.ndjson" --buffer 1000 --chain "$chain" --sink "$1" 2>&1 \
  | grep -o '[0-9]* rows/s' | head -1 | awk '{print $1}'; }
median() { printf "%s\n" "$@" | sort -n | sed -n 2p; }
f=(); d=(); n=()
for i in 1 2 3; do
  f+=("$(rate "file:$tmp/out.ndjson")")
  d+=("$(rate "$url?table=weather_$i")")
  n+=("$(rate "$url?table=plain_$i&dedupe=none")")
done
printf "%-34s %12s\n" "sink" "rows/s"
printf "%-34s %12d\n" "file (NDJSON)" "$(median "${f[@]}")"
printf "%-34s %12d\n" "postgres, dedupe=row (default)" "$(median "${d[@]}")"
printf "%-34s %12d\n" "postgres, dedupe=none" "$(median "${n[@]}")"
psql -X -q -d "$url" -c "\\copy plain_1 TO '$tmp/rows.bin' (FORMAT binary)"
alone=()
for i in 1 2 3; do
  psql -X -q -d "$url" -c "CREATE TABLE alone_$i (LIKE plain_1)"
  s=$(date +%s%N)
  psql -X -q -d "$url" -c "\\copy alone_$i FROM '$tmp/rows.bin' (FORMAT binary)"
  e=$(date +%s%N)
  alone+=("$(( $(psql -X -A -t -d "$url" -c "SELECT count(*) FROM alone_$i") * 1000000000 / (e - s) ))")
done
printf "%-34s %12d\n" "PostgreSQL alone, one COPY (psql)" "$(median "${alone[@]}")"
psql -X -A -t -d "$url" -c "SELECT count(*) FROM weather_1" | sed 's/^/rows in weather_1: /'
