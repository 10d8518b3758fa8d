#!/usr/bin/env bash
# Keyed against unkeyed: the paper's chain (fillna_zeros, normalizer, drop_duplicates) at
# buffer 100 on a pool of 2, the same 300,000 rows without a key and with --key station
# (messages gathered per station, each routed whole to its station's worker) and with
# --key station --ordered global (messages cut from the stream, split by station, put back in
# input order) for 3, 100 and 10,000 stations; rows/s of each run, alternating, median of 3.
# Also a keyed chain with state (rolling mean over 10 rows, running standard scaler) for the
# cost of the state itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rate() { "$bin" run --source "file:$1" --buffer 100 --method pool --workers 2 --chain "$2" --sink "file:$tmp/out.ndjson" "${@:3}" 2>&1 \
  | grep -o '[0-9]* rows/s' | head -1 | awk '{print $1}'; }
median() { printf "%s\n" "$@" | sort -n | sed -n 2p; }
paper=fillna_zeros,normalizer,drop_duplicates
stateful='fillna_zeros,rolling{"window": 10},standard_scaler{"fit": "running"}'
printf "%8s | %14s | %14s %7s | %16s %7s | %22s\n" stations "unkeyed rows/s" "keyed rows/s" ratio "global rows/s" ratio "keyed, with state rows/s"
for k in 3 100 10000; do
  "$bin" gen --rows 300000 --seed 1 --stations "$k" --out "$tmp/in.ndjson"
  u=(); q=(); g=(); s=()
  for _ in 1 2 3; do
    u+=("$(rate "$tmp/in.ndjson" "$paper")")
    q+=("$(rate "$tmp/in.ndjson" "$paper" --key station)")
    g+=("$(rate "$tmp/in.ndjson" "$paper" --key station --ordered global)")
    s+=("$(rate "$tmp/in.ndjson" "$stateful" --key station)")
  done
  mu=$(median "${u[@]}"); mq=$(median "${q[@]}"); mg=$(median "${g[@]}"); ms=$(median "${s[@]}")
  printf "%8d | %14d | %14d %6.2fx | %16d %6.2fx | %22d\n" "$k" "$mu" "$mq" "$(echo "$mq / $mu" | bc -l)" "$mg" "$(echo "$mg / $mu" | bc -l)" "$ms"
done
