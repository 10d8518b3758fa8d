#!/usr/bin/env bash
# Issue 5's figures, in one run on this machine:
#   1. `streamprep profile` of the chain fillna_zeros,normalizer,drop_duplicates with inline
#      and pool (2 threads) at buffers 1..10000: table, CSV and plot in docs/capacity/;
#   2. the paper's validation (figures 10 and 11): the `gen` rows replayed with `run --rate`
#      for several (buffer, workers, method, rate) settings; measured rho and mean row latency
#      (the run's summary) against `streamprep plan`'s prediction from a profile of that
#      buffer and method at that rate taken just before the run, in ROUNDS rounds (default 11)
#      of RUN_SECONDS (default 1.5) runs.
# Usage: bench/capacity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
chain=fillna_zeros,normalizer,drop_duplicates
out=bench/out; docs=docs/capacity; mkdir -p "$out" "$docs"
work=$(mktemp -d /dev/shm/streamprep-capacity.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -s "$out/750k.ndjson" ] || "$bin" gen --rows 750000 --seed 1 --out "$out/750k.ndjson"
cp "$out/750k.ndjson" "$work/in.ndjson"

echo "machine: $(nproc) cores; $(date -u +%F)"
echo
echo '```'
"$bin" profile --chain "$chain" --method inline,pool --workers 2 \
  --buffers 1,10,100,1000,3000,5000,7500,10000 --messages 75 --input "$work/in.ndjson" \
  --csv "$docs/profile.csv" --plot "$docs/profile.svg" 2>/dev/null
echo '```'
echo

# buffer workers method rate. plan's model gives each worker a core of its own (it recommends
# at most cores - 1 pool workers, the reader takes one); the last three settings run as many
# pool workers as cores, which plan flags ("S(b) will grow"), to show how far off it then is.
settings=(
  "10 1 inline 100000"
  "100 1 inline 100000"
  "100 1 inline 200000"
  "1000 1 inline 100000"
  "1000 1 inline 200000"
  "100 1 pool 100000"
  "1000 1 pool 200000"
  "10 1 inline 400000"
  "100 2 pool 100000"
  "1000 2 pool 200000"
  "1000 2 pool 400000"
)
# Each setting is measured in ROUNDS rounds (default 11), each a profile of that buffer and
# method followed at once by the run: this shared VM's speed drifts by a third within seconds
# (a profile and a run a second apart can differ by 30% in S(b)), so one pair compares two
# different machines. The table gives the median over the rounds of the predicted and the
# measured rho (and of each side's S(b) and latency), the error of those medians, and the
# median of the per-round errors (each round's prediction against its own run, a second
# apart, so the drift between rounds cancels), with every round's error.
rounds=${ROUNDS:-11}
run_s=${RUN_SECONDS:-1.5}
# the median of numbers, one a line ("inf" allowed: awk would read it as 0 in a sum)
median() { sort -g | awk '{v[NR]=$1} END{a=v[int((NR+1)/2)]; b=v[int(NR/2)+1];
  print (NR%2 ? a : (a == "inf" || b == "inf") ? "inf" : (a+b)/2)}'; }
echo "$rounds rounds a setting (profile, then run); medians over the rounds"
echo
echo "| buffer | workers | method | rows/s asked | rows/s achieved | S(b) profiled ms | S(b) in the run ms | predicted rho | measured rho | rho error (of medians) | median of per-round errors | per-round errors | predicted latency ms | measured mean latency ms | p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for s in "${settings[@]}"; do
  read -r b c m rate <<< "$s"
  # RUN_SECONDS of rows (at most the file): short, so that a round's profile and run see
  # the same machine
  rows=$(awk -v r="$rate" -v s="$run_s" 'BEGIN{n=int(r*s); if (n>750000) n=750000; print n}')
  head -n "$rows" "$work/in.ndjson" > "$work/run.ndjson"
  args=(--method "$m"); [ "$m" = pool ] && args+=(--workers "$c")
  # the profile hands messages over at the run's pace (--arrival-rate): the chain idles
  # between messages as in the run, which costs it more a message than back to back (40% at
  # b=100 and 100,000 rows/s); a pool is also measured open loop, its workers side by side.
  # At least 75 messages and about 0.4 s of them.
  n=$(awk -v b="$b" -v r="$rate" 'BEGIN{n=int(0.4*r/b); if (n<75) n=75; print n}')
  : > "$work/rounds"
  for r in $(seq "$rounds"); do
    "$bin" profile --chain "$chain" --method "$m" --workers "$c" --buffers "$b" --messages "$n" \
      --arrival-rate "$rate" --input "$work/in.ndjson" --csv "$work/s.csv" --plot "$work/s.svg" >/dev/null 2>&1
    sum=$("$bin" run --source "file:$work/run.ndjson" --rate "$rate" --chain "$chain" --buffer "$b" \
      "${args[@]}" --max-wait 1s --sink "file:$work/o.ndjson" 2>&1)
    secs=$(sed -n 's/.* \([0-9.]*\) s, .*/\1/p' <<< "$sum")
    rho=$(sed -n 's/.*; rho \([0-9.]*\) over.*/\1/p' <<< "$sum")
    lat=$(sed -n 's/.*row latency mean \([0-9.]*\) ms.*/\1/p' <<< "$sum")
    srun=$(sed -n 's/.*chain \([0-9.]*\) ms\/msg mean.*/\1/p' <<< "$sum")
    p99=$(sed -n 's/.*row latency mean [0-9.]* ms, p50 [0-9.]* ms, p99 \([0-9.]*\) ms.*/\1/p' <<< "$sum")
    # the time the chain kept a worker busy, which rho counts (plan uses it too)
    sprof=$(awk -F, '$3 == "busy" {printf "%.4f", $5 / 1000}' "$work/s.csv")
    plan=$("$bin" plan --profile "$work/s.csv" --arrival-rate "$rate" --workers "$c" --method "$m" --arrivals regular --json)
    pred=$(python3 -c '
import json, sys
v = json.loads(sys.argv[1]); b = int(sys.argv[2])
s = next(x for x in v["settings"] if x["buffer"] == b)
lat = s["latency_ms"]
print("%.4f %s" % (s["rho"], "inf" if lat is None else "%.3f" % lat))' "$plan" "$b")
    read -r prho plat <<< "$pred"
    achieved=$(awk -v n="$rows" -v s="$secs" 'BEGIN{print n/s}')
    echo "$prho $rho $sprof $srun $plat $lat $p99 $achieved" >> "$work/rounds"
  done
  col() { cut -d' ' -f"$1" "$work/rounds" | median; }
  prho=$(col 1); rho=$(col 2)
  err=$(awk -v p="$prho" -v m="$rho" 'BEGIN{printf "%+.0f%%", (p-m)/m*100}')
  merr=$(awk '{print ($1-$2)/$2*100}' "$work/rounds" | median | awk '{printf "%+.0f%%", $1}')
  errs=$(awk '{printf "%s%+.0f", (NR>1 ? ", " : ""), ($1-$2)/$2*100} END{printf "%%"}' "$work/rounds" | sed 's/, /%, /g')
  plat=$(col 5 | awk '$1 == "inf" || $1 + 0 > 1e300 {print "unstable"; next} {printf "%.2f", $1}')
  printf '| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %.2f | %.2f |\n' "$b" "$c" "$m" "$rate" \
    "$(col 8)" "$(col 3)" "$(col 4)" "$prho" "$rho" "$err" "$merr" "$errs" "$plat" "$(col 6)" "$(col 7)"
done
