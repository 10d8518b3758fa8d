#!/usr/bin/env bash
# Issue 4's figures, in one run on this machine, with a private redis-server on a free port:
#   0. service time of the chain one message at a time (`streamprep profile`) for inline, pool
#      and queue at buffer 1, 10, 100, 1000, 10000, and queue / pool (the issue's targets);
#   1. time per message of the chain fillna_zeros,normalizer,drop_duplicates at buffer 1, 10,
#      100, 1000, 10000 for inline, pool (2 threads) and queue (one `streamprep worker` with
#      --concurrency 2, the coordinator on the same host): the run's seconds / messages, with
#      the same parallelism for pool and queue (the paper's figures 8 and 9 curves);
#   2. rows/s of the 750,000-row file at buffer 1000 through the queue with 1, 2 and 4 worker
#      processes (one thread each).
# Usage: bench/queue_methods.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)"; exit 1; }
chain=fillna_zeros,normalizer,drop_duplicates
out=bench/out; mkdir -p "$out"
work=$(mktemp -d /dev/shm/streamprep-queue.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis_pid=$!
workers=()
stop_workers() { for w in "${workers[@]}"; do kill -INT "$w" 2>/dev/null || true; wait "$w" 2>/dev/null || true; done; workers=(); }
trap 'stop_workers; kill $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
url=redis://127.0.0.1:$port
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done
start_workers() { # N CONCURRENCY
  for _ in $(seq "$1"); do
    "$bin" worker --broker "$url" --concurrency "$2" 2>/dev/null &
    workers+=($!)
  done
  sleep 0.3
}
[ -s "$out/750k.ndjson" ] || "$bin" gen --rows 750000 --seed 1 --out "$out/750k.ndjson"

# seconds of a run (its summary) -> "seconds messages"
run() { # BUFFER INPUT METHOD-ARGS...
  local b=$1 in=$2; shift 2
  "$bin" run --source "file:$in" --chain "$chain" --buffer "$b" --sink "file:$work/o.ndjson" "$@" 2>&1 \
    | sed -n 's/.*messages \([0-9]*\),.* \([0-9.]*\) s, .*/\2 \1/p'
}
per_msg() { awk '{printf "%.1f", $1 / $2 * 1e6}'; }

echo "machine: $(nproc) cores; $(redis-server --version | cut -d' ' -f1-3); $(date -u +%F)"
echo
start_workers 1 2
# service time, one message at a time (the paper's procedure; `streamprep profile`)
mkdir -p docs/capacity
"$bin" profile --chain "$chain" --method inline,pool,queue --workers 2 --broker "$url" \
  --buffers 1,10,100,1000,10000 --messages 75 --input "$out/750k.ndjson" \
  --csv "$out/queue_profile.csv" --plot docs/capacity/queue_profile.svg 2>/dev/null | sed -n '1,7p'
echo
echo "| buffer | inline ms | pool ms | queue ms | queue / pool | target |"
echo "|---|---|---|---|---|---|"
awk -F, '$3 == "chain" { t[$1 "," $2] = $5 / 1000; b[$2] = 1 }
  END { n = split("1 10 100 1000 10000", bs, " ");
        for (i = 1; i <= n; i++) { k = bs[i];
          tgt = (k == 100) ? "2x" : (k == 10000) ? "1.2x" : "";
          printf "| %s | %.3f | %.3f | %.3f | %.2f | %s |\n", k, t["inline," k], t["pool," k], t["queue," k],
                 t["queue," k] / t["pool," k], tgt } }' "$out/queue_profile.csv"
echo
echo "throughput: the run's seconds / messages, everything at once"
echo
echo "| buffer | rows | messages | inline us/msg | pool (2) us/msg | queue (1 worker x 2) us/msg | queue / pool |"
echo "|---|---|---|---|---|---|---|"
for b in 1 10 100 1000 10000; do
  case $b in 1) n=5000;; 10) n=30000;; 100) n=200000;; *) n=750000;; esac
  head -n "$n" "$out/750k.ndjson" > "$work/in.ndjson"
  i=$(run "$b" "$work/in.ndjson" --method inline)
  p=$(run "$b" "$work/in.ndjson" --method pool --workers 2)
  q=$(run "$b" "$work/in.ndjson" --method queue --broker "$url")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$b" "$n" "$(cut -d' ' -f2 <<< "$i")" \
    "$(per_msg <<< "$i")" "$(per_msg <<< "$p")" "$(per_msg <<< "$q")" \
    "$(awk -v q="$(per_msg <<< "$q")" -v p="$(per_msg <<< "$p")" 'BEGIN{printf "%.2f", q/p}')"
done
stop_workers

echo
echo "| worker processes (1 thread each) | seconds | rows/s |"
echo "|---|---|---|"
for n in 1 2 4; do
  start_workers "$n" 1
  r=$(run 1000 "$out/750k.ndjson" --method queue --broker "$url")
  printf '| %s | %s | %.0f |\n' "$n" "$(cut -d' ' -f1 <<< "$r")" "$(awk '{print 750000 / $1}' <<< "$r")"
  stop_workers
done
p=$(run 1000 "$out/750k.ndjson" --method pool --workers 2)
printf '| (pool, 2 threads, for reference) | %s | %.0f |\n' "$(cut -d' ' -f1 <<< "$p")" "$(awk '{print 750000 / $1}' <<< "$p")"
