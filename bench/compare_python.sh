#!/usr/bin/env bash
# Side by side, in one run: the paper's Python method (pandas + scikit-learn per message,
# single process; bench/python_method.py) against `streamprep run --method inline`, on the same
# `streamprep gen` rows, for the chain fillna_zeros,normalizer,drop_duplicates, per buffer size.
# Python gets fewer rows at small buffers (it is slow there); streamprep runs the same file,
# and its time is its own processing time as its summary reports it, like Python's loop time
# (median of 5 runs; Python runs once, its runs are long); the whole-process rate is shown too.
#   usage: bench/compare_python.sh [ROWS_FOR_B>=1000]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
venv=$(tests/oracle/venv.sh)
# Outputs (both sides) go to tmpfs when there is one: this measures the work, not the
# writeback of a shared disk.
out=bench/out; mkdir -p "$out"
scratch=$out; [ -d /dev/shm ] && scratch=$(mktemp -d /dev/shm/streamprep-bench.XXXXXX)
trap '[ "$scratch" != "$out" ] && rm -rf "$scratch"' EXIT
big=${1:-200000}
chain=fillna_zeros,normalizer,drop_duplicates
"$bin" gen --rows "$big" --seed 1 --out "$out/rows.ndjson"
printf '%-7s %-8s %14s %16s %8s %18s\n' buffer rows python_rows/s streamprep_rows/s ratio whole_process_rows/s
for b in 1 10 100 1000 10000; do
  case $b in 1) n=3000;; 10) n=20000;; 100) n=100000;; *) n=$big;; esac
  head -n "$n" "$out/rows.ndjson" > "$scratch/in.ndjson"
  py=$("$venv/bin/python" bench/python_method.py "$scratch/in.ndjson" "$b" "$scratch/py.ndjson" "$chain" | awk '{print $3}')
  # streamprep: the median of 5 runs (a short run is at the mercy of this shared machine).
  # Timed like the Python side: its own processing time (the summary line's seconds, from the
  # start of the pipeline to the last byte written, reading the input included), not process
  # start-up. The whole-process figure is printed too.
  runs=$(for i in 1 2 3 4 5; do
    t0=$(date +%s.%N)
    s=$("$bin" run --source "file:$scratch/in.ndjson" --chain "$chain" --buffer "$b" --method inline --sink "file:$scratch/rs.ndjson" 2>&1 | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
    t1=$(date +%s.%N)
    awk -v n="$n" -v s="$s" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f %.1f\n", n/s, n/(b-a)}'
  done | sort -n)
  rs=$(echo "$runs" | sed -n 3p | cut -d' ' -f1)
  whole=$(echo "$runs" | cut -d' ' -f2 | sort -n | sed -n 3p)
  ratio=$(awk -v a="$rs" -v b="$py" 'BEGIN{printf "%.1f", a/b}')
  printf '%-7s %-8s %14s %16s %7sx %18s\n' "$b" "$n" "$py" "$rs" "$ratio" "$whole"
done
