#!/usr/bin/env bash
# The 750,000-row `gen` file through fillna_zeros,normalizer,drop_duplicates at buffer 1000,
# JSON in and JSON out: wall time and peak memory for inline and for the pool with 2 workers,
# once writing a file (bench/out, on disk) and once writing to /dev/null (the chain without the
# disk: the pool/inline ratio of the work itself).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
out=bench/out; mkdir -p "$out"
[ -s "$out/750k.ndjson" ] || "$bin" gen --rows 750000 --seed 1 --out "$out/750k.ndjson"
ls -l "$out/750k.ndjson" | awk '{printf "input: %.0f MB\n", $5/1e6}'
chain=fillna_zeros,normalizer,drop_duplicates
for run in "inline" "pool --workers 2"; do
  /usr/bin/time -f "%e s wall, %M KB peak RSS" "$bin" run --source "file:$out/750k.ndjson" --chain "$chain" \
    --buffer 1000 --method $run --sink "file:$out/750k.out.ndjson" 2>&1 | sed "s/^/[$run, file] /"
done
for run in "inline" "pool --workers 2"; do
  { /usr/bin/time -f "%e s wall, %M KB peak RSS" "$bin" run --source "file:$out/750k.ndjson" --chain "$chain" \
    --buffer 1000 --method $run --sink - > /dev/null; } 2>&1 | sed "s/^/[$run, \/dev\/null] /"
done
