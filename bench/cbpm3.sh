#!/usr/bin/env bash
# Seed 002's CBPM3 day (issue 19), side by side in one run: a private PostgreSQL 15 filled
# with 864,000 rows (examples/cbpm3/fill.sql), then the Python way (bench/cbpm3.py: read_sql,
# eval, resample('1s').mean(), MinMaxLTTB to 2,000 points) and streamprep (the postgres
# source, eval, resample, minmax_lttb: examples/cbpm3/project.toml) to the 1-second resample
# and to the points: wall seconds and peak resident memory (GNU time), median of 3.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release -q
bin=$CARGO_TARGET_DIR/release/streamprep
venv=$(tests/oracle/venv.sh)
. bench/pg_lib.sh
psql -X -q -d "$url" -v day=2026-03-01 -f examples/cbpm3/fill.sql
echo "rows: $(psql -X -A -t -d "$url" -c 'SELECT count(*) FROM cbpm3')"
from=2026-03-01T00:00:00Z; to=2026-03-02T00:00:00Z
source="$url?table=cbpm3&time_column=ts&from=$from&to=$to"
ours() { # chain -> "seconds peak_mb"
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" run examples/cbpm3/project.toml \
    --source "$source" --chain "$1" --sink "file:$tmp/out.ndjson" -q 2>/dev/null
  awk '{printf "%s %.0f\n", $1, $2/1024}' "$tmp/time"
}
eval_expr='eval{"expr": "x1 = 12.5 * (bpm1_a + bpm1_d - bpm1_b - bpm1_c) / (bpm1_a + bpm1_b + bpm1_c + bpm1_d); x2 = 12.5 * (bpm2_a + bpm2_d - bpm2_b - bpm2_c) / (bpm2_a + bpm2_b + bpm2_c + bpm2_d)"}'
to_1s="$eval_expr,resample{\"interval\": \"1s\"}"
to_points="$to_1s,minmax_lttb{\"points\": 2000}"
py=(); a=(); b=()
for i in 1 2 3; do
  py+=("$("$venv/bin/python" bench/cbpm3.py "$url" "$from" "$to")")
  a+=("$(ours "$to_1s")")
  b+=("$(ours "$to_points")")
done
med() { printf "%s\n" "$@" | sort -n -k"$2" | sed -n 2p; }
echo "python (rows, seconds, resampled rows, points, s to 1 s resample, s to points, peak MB):"
printf "  %s\n" "${py[@]}"
echo "streamprep to the 1 s resample (s, peak MB):"; printf "  %s\n" "${a[@]}"
echo "streamprep to 2,000 points (s, peak MB):"; printf "  %s\n" "${b[@]}"
echo "points: $(wc -l < "$tmp/out.ndjson") rows in the last output"
# PostgreSQL alone sending the day (binary COPY to /dev/null): the floor under any client
s=$(date +%s%N)
psql -X -q -d "$url" -c "COPY (SELECT * FROM cbpm3 WHERE ts >= '$from' AND ts < '$to' ORDER BY ts) TO STDOUT (FORMAT binary)" > /dev/null
e=$(date +%s%N)
echo "PostgreSQL alone, the day by binary COPY to /dev/null: $(awk -v n="$((e - s))" 'BEGIN { printf "%.2f", n / 1e9 }') s"
