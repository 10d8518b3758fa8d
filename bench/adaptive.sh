#!/usr/bin/env bash
# Adaptive buffering on a stream whose rate steps up and down (issue 5): the `gen` rows
# replayed with `run --rate 10000:8s,150000:8s,10000:8s` through the chain, inline, with
# `--buffer auto --max-latency 50ms` and with two fixed buffers (1 and 1000); one CSV line a
# second from each (`--timeline`), a table of the mean row latency per phase, and a plot
# (docs/capacity/adaptive.svg).
# Usage: bench/adaptive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
chain=fillna_zeros,normalizer,drop_duplicates
docs=docs/capacity; mkdir -p "$docs"
work=$(mktemp -d /dev/shm/streamprep-adaptive.XXXXXX)
trap 'rm -rf "$work"' EXIT
rates=10000:8s,150000:8s,10000:8s
"$bin" gen --rows 1360000 --seed 1 --out "$work/in.ndjson"
echo "machine: $(nproc) cores; $(date -u +%F); --rate $rates"
echo
echo "| buffer | rows/s achieved | mean latency 0-8 s (ms) | mean latency 8-16 s (ms) | mean latency 16-24 s (ms) | max latency of a second (ms) | buffer sizes used |"
echo "|---|---|---|---|---|---|---|"
for b in auto 1 1000; do
  # a fixed buffer closes a message only when it is full (as in the paper); auto closes it
  # after max-latency / 2 when the stream is slow
  wait=60s; [ "$b" = auto ] && wait=25ms
  s=$("$bin" run --source "file:$work/in.ndjson" --rate "$rates" --buffer "$b" --max-latency 50ms \
    --max-wait "$wait" --chain "$chain" --sink "file:$work/o.ndjson" --timeline "$docs/timeline-$b.csv" 2>&1 \
    | sed -n 's/.* \([0-9]*\) rows\/s$/\1/p' | head -1)
  python3 - "$docs/timeline-$b.csv" "$b" "$s" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def mean(lo, hi):
    xs = [float(r["latency_ms"]) for r in rows if lo < float(r["seconds"]) <= hi]
    return sum(xs) / len(xs) if xs else float("nan")
sizes = sorted({int(r["buffer"]) for r in rows})
print("| %s | %s | %.2f | %.2f | %.2f | %.1f | %s |" % (sys.argv[2], sys.argv[3], mean(0, 8), mean(8, 16),
      mean(16, 24), max(float(r["latency_ms"]) for r in rows),
      ", ".join(map(str, sizes)) if len(sizes) < 12 else "%d to %d" % (sizes[0], sizes[-1])))
PY
done
python3 bench/plot_timelines.py "$docs/adaptive.svg" "auto (max latency 50 ms)=$docs/timeline-auto.csv" \
  "fixed b=1=$docs/timeline-1.csv" "fixed b=1000=$docs/timeline-1000.csv"
echo
echo "plot: $docs/adaptive.svg"
