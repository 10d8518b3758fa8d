#!/usr/bin/env bash
# Two streamprep binaries side by side, alternately, on the runs of bench/compare_python.sh
# (the paper's chain, --method inline, the same rows per buffer size, output on tmpfs):
# the median rows/s of each over N rounds (A, B, A, B, ...), so both see the same machine.
#   usage: bench/ab.sh BIN_A BIN_B [ROUNDS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1; b=$2; rounds=${3:-7}
out=bench/out; mkdir -p "$out"
scratch=$out; [ -d /dev/shm ] && scratch=$(mktemp -d /dev/shm/streamprep-ab.XXXXXX)
trap '[ "$scratch" != "$out" ] && rm -rf "$scratch"' EXIT
chain=fillna_zeros,normalizer,drop_duplicates
"$b" gen --rows 200000 --seed 1 --out "$out/rows.ndjson"
rate() { # BIN FILE B -> rows/s from the summary (its own processing time, as compare_python.sh)
  "$1" run --source "file:$2" --chain "$chain" --buffer "$3" --method inline --sink "file:$scratch/o.ndjson" 2>&1 |
    sed -n 's/.*rows in \([0-9]*\),.* \([0-9.]*\) s, .*/\1 \2/p' | awk '{printf "%.0f\n", $1/$2}'
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-7s %-8s %12s %12s %8s\n' buffer rows A_rows/s B_rows/s B/A
for bsz in 1 10 100 1000 10000; do
  case $bsz in 1) n=3000;; 10) n=20000;; 100) n=100000;; *) n=200000;; esac
  head -n "$n" "$out/rows.ndjson" > "$scratch/in.ndjson"
  ra=(); rb=()
  for _ in $(seq "$rounds"); do
    ra+=("$(rate "$a" "$scratch/in.ndjson" "$bsz")")
    rb+=("$(rate "$b" "$scratch/in.ndjson" "$bsz")")
  done
  ma=$(printf '%s\n' "${ra[@]}" | median); mb=$(printf '%s\n' "${rb[@]}" | median)
  printf '%-7s %-8s %12s %12s %7.3fx\n' "$bsz" "$n" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN{print b/a}')"
done
