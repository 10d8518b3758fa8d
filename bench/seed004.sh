#!/usr/bin/env bash
# Seed 004's table on this machine: the single-process pandas pipeline (old_pipeline.py)
# against streamprep running the same black box through the exec step with 1 and 2 Python
# processes (examples/seed004/run.sh: frames over TCP in, 100 rows a message as the seed
# batches them, and 1000 with 2 processes, frames out),
# wall time of each, one after the other in one run, and the ratio; outputs checked equal.
# Usage: bench/seed004.sh [ROWS...]   (default 1000 10000 100000; BLACKBOX_WORK sets the
# classifier's CPU per row: 20000 iterations here, about 1 ms a row, a quarter of the seed's
# 3.7 ms; the example's own default is 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
py=$(tests/oracle/venv.sh)/bin/python
export PYTHON=$py
export BLACKBOX_WORK=${BLACKBOX_WORK:-20000}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
printf "%8s | %10s | %18s %7s | %18s %7s | %18s %7s\n" rows "pandas (s)" "1 process, b=100" ratio "2 processes, b=100" ratio "2 processes, b=1000" ratio
for rows in "${@:-1000 10000 100000}"; do
  for r in $rows; do
    "$py" examples/seed004/gen_input.py "$r" "$tmp/in.csv"
    old=$(cd examples/seed004 && secs "$py" old_pipeline.py "$tmp/in.csv" "$tmp/old.csv")
    one=$(secs examples/seed004/run.sh 1 "$tmp/in.csv" "$tmp/new1.csv" "$bin")
    two=$(secs examples/seed004/run.sh 2 "$tmp/in.csv" "$tmp/new2.csv" "$bin")
    big=$(BUFFER=1000 secs examples/seed004/run.sh 2 "$tmp/in.csv" "$tmp/new3.csv" "$bin")
    for f in new1 new2 new3; do
      cmp -s "$tmp/old.csv" "$tmp/$f.csv" || { echo "outputs differ at $r rows ($f)" >&2; exit 1; }
    done
    ratio() { echo "$old / $1" | bc -l; }
    printf "%8d | %10.2f | %18.2f %6.2fx | %18.2f %6.2fx | %18.2f %6.2fx\n" "$r" "$old" "$one" "$(ratio "$one")" "$two" "$(ratio "$two")" "$big" "$(ratio "$big")"
  done
done
