#!/usr/bin/env bash
# The exec step's own cost: the identity (python/streamprep_step.py serving lambda df: df)
# on the paper's 33-column rows, inline, one message at a time through one process: the
# step's mean time a message (streamprep's per-step figure) at b = 1, 100, 10,000, Arrow and
# CSV (what framing, pipes and encoding cost: the function itself does nothing); then rows/s
# through 2 processes (pool of 2) at b = 10,000.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
py=$(tests/oracle/venv.sh)/bin/python
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" gen --rows 400000 --seed 1 --out "$tmp/rows.ndjson"
step() {
  case $1 in
    table) echo "exec{\"command\": [\"$py\", \"python/streamprep_step.py\", \"--arrow\"], \"format\": \"arrow\"}";;
    *) echo "exec{\"command\": [\"$py\", \"python/streamprep_step.py\"], \"format\": \"$1\"}";;
  esac
}
# arrow / csv: the function gets a pandas DataFrame; table: a pyarrow Table (serve_arrow)
echo "format  buffer  messages  exec ms/msg (mean)  rows/s"
for format in table arrow csv; do
  for b in 1 100 10000; do
    case $b in 1) rows=2000;; 100) rows=100000;; *) rows=400000;; esac
    head -n "$rows" "$tmp/rows.ndjson" > "$tmp/in.ndjson"
    out=$("$bin" run --source "file:$tmp/in.ndjson" --buffer "$b" --chain "$(step $format)" \
      --sink "file:$tmp/out.ndjson" 2>&1)
    ms=$(echo "$out" | grep -o 'exec [0-9.]*' | awk '{print $2}')
    rps=$(echo "$out" | grep -o '[0-9]* rows/s' | head -1 | awk '{print $1}')
    printf "%-6s  %6d  %8d  %18s  %s\n" "$format" "$b" "$((rows / b))" "$ms" "$rps"
  done
done
head -n 400000 "$tmp/rows.ndjson" > "$tmp/in.ndjson"
for format in table arrow csv; do
  out=$("$bin" run --source "file:$tmp/in.ndjson" --buffer 10000 --method pool --workers 2 \
    --chain "$(step $format)" --sink "file:$tmp/out.ndjson" 2>&1)
  echo "2 processes, $format, b=10000: $(echo "$out" | grep -o '[0-9]* rows/s' | head -1)"
done
