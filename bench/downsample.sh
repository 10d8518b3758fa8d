#!/usr/bin/env bash
# Decimation speed against tsdownsample (issue 19): 10^7 and 10^8 float64 points, single core
# each, one run (bench/downsample.py). Needs the oracle's venv (tests/oracle/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q -p streamprep-ops --example downsample_speed
venv=$(tests/oracle/venv.sh)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for n in ${SIZES:-10000000 100000000}; do
  "$venv/bin/python" bench/downsample.py "$n" "$CARGO_TARGET_DIR/release/examples/downsample_speed" "$tmp"
  echo
done
