#!/usr/bin/env bash
# Issue 3's figures: rows from a private Mosquitto (QoS 0, one row a publish, `gen --stamp`)
# through fillna_zeros,normalizer,drop_duplicates on the pool (2 workers) to a file in
# /dev/shm; end-to-end latency from each row's publish time (`sent_us`) to the sink
# (`run --latency-field sent_us`). The publisher and the broker share the machine.
#
#   1. flat out: per buffer, 300,000 rows published as fast as one publisher can; rows /
#      (first publish -> last row at the sink). Most of the backlog is worked off after the
#      publisher has finished, so this is the pipeline's rate with the machine to itself.
#   2. sustained saturation: the highest publish rate (bisection below the flat-out figure,
#      SECONDS-long runs) at which the pipeline keeps up while publisher and broker run: at
#      least 97% of the rate reaches the sink and p99 latency stays under 100 ms.
#   3. latency at 50% and 90% of the sustained saturation rate.
#   4. overload: twice the sustained saturation rate of OVERLOAD_BUFFER (default 1, whose rate
#      one publisher can double) for OVERLOAD_SECONDS (60), once with `block` (peak RSS of
#      streamprep and of Mosquitto) and once with `drop_oldest` (the dropped counter against
#      published minus taken by the chain).
#
# Usage: bench/mqtt_live.sh [BUFFERS...]   (default: 1 10 100 1000; SECONDS_EACH=10)
# Needs: mosquitto (scripts/test.sh installs it), python3, bc.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
export PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null || { echo "mosquitto is not installed (apt-get install mosquitto)"; exit 1; }
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
chain=fillna_zeros,normalizer,drop_duplicates
buffers=("${@:-1 10 100 1000}")
read -r -a buffers <<< "${buffers[*]}"
overload_b=${OVERLOAD_BUFFER:-1}
overload_s=${OVERLOAD_SECONDS:-60}
secs=${SECONDS_EACH:-10}
work=$(mktemp -d /dev/shm/streamprep-mqtt.XXXXXX)
chmod 777 "$work"
broker_pid=
trap '[ -n "$broker_pid" ] && kill $broker_pid 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_broker() {
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n' \
    "$port" > "$work/mosquitto.conf"
  mosquitto -c "$work/mosquitto.conf" 2>/dev/null &
  broker_pid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "mosquitto did not start"; exit 1
}

stop_broker() { kill $broker_pid; wait $broker_pid 2>/dev/null || true; broker_pid=; }

# one measurement: BUFFER RATE ROWS [run args...]; sets pub_rate, summary, latency, rss, mosq_rss
measure() {
  local b=$1 rate=$2 rows=$3; shift 3
  start_broker
  rm -f "$work/out.ndjson"
  "$bin" run --source "mqtt://127.0.0.1:$port/wetter" --chain $chain --buffer "$b" \
    --method pool --workers 2 --max-wait 50ms --latency-field sent_us \
    --sink "file:$work/out.ndjson" "$@" 2> "$work/run.err" &
  local run_pid=$!
  until grep -q "subscribed" "$work/run.err"; do sleep 0.05; done
  pub_rate=$("$bin" gen --mqtt "mqtt://127.0.0.1:$port/wetter" --rate "$rate" --rows "$rows" --stamp 2>&1 \
    | sed -n 's/.*(\([0-9]*\) rows\/s).*/\1/p')
  # wait until the chain has taken everything (the output stops growing for 2 s)
  local last=-1 now still=0
  while [ $still -lt 2 ]; do
    sleep 1
    now=$(wc -l < "$work/out.ndjson" 2>/dev/null || echo 0)
    if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$now
  done
  rss=$(awk '/VmHWM/ {print $2}' /proc/$run_pid/status)
  mosq_rss=$(awk '/VmHWM/ {print $2}' /proc/$broker_pid/status)
  kill -INT $run_pid; wait $run_pid || { cat "$work/run.err"; exit 1; }
  stop_broker
  summary=$(grep "rows in" "$work/run.err" | tail -1)
  latency=$(grep "latency p50" "$work/run.err" | tail -1)
}

field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" <<< "$2"; }
e2e_rate() { sed -n 's/.*(\([0-9]*\) rows\/s from first.*/\1/p' <<< "$latency"; }

keeps_up() { # RATE: after a measure at that rate
  local got p99
  got=$(e2e_rate); p99=$(field p99 "$latency")
  [ -n "$got" ] && [ $(( got * 100 )) -ge $(( $1 * 97 )) ] && [ "$(echo "$p99 < 100" | bc)" = 1 ]
}

row() { # BUFFER LOAD RATE
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f |\n' "$1" "$2" "$3" "$pub_rate" \
    "$(field "rows in" "$summary" | tr -d ,)" "$(e2e_rate)" "$(field p50 "$latency")" \
    "$(field p99 "$latency")" "$(field max "$latency")" "$(echo "$rss / 1024" | bc -l)"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo); $(mosquitto -h 2>/dev/null | head -1); $(date -u +%F)"
echo
echo "| buffer | load | rate asked | publisher achieved | rows taken by the chain | end-to-end rows/s | p50 ms | p99 ms | max ms | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
declare -A sat
for b in "${buffers[@]}"; do
  measure "$b" 1000000 300000
  flat=$(e2e_rate)
  row "$b" "flat out" "(max)"
  # bisection for the sustained rate: lo keeps up, hi does not
  lo=0; hi=$flat
  for _ in 1 2 3 4 5; do
    mid=$(( (lo + hi) / 2 ))
    measure "$b" "$mid" $(( mid * secs ))
    if keeps_up "$mid"; then lo=$mid; else hi=$mid; fi
  done
  sat[$b]=$lo
  echo "| $b | **sustained saturation** | **$lo** | | | | | | | |"
  for pct in 50 90; do
    rate=$(( sat[$b] * pct / 100 ))
    measure "$b" "$rate" $(( rate * secs ))
    row "$b" "$pct%" "$rate"
  done
done

if [ "$overload_s" -gt 0 ]; then
  b=$overload_b
  [ -n "${sat[$b]:-}" ] || { echo "OVERLOAD_BUFFER=$b must be among the buffers measured"; exit 1; }
  rate=$(( sat[$b] * 2 ))
  rows=$(( rate * overload_s ))
  echo
  echo "overload: buffer $b, sustained saturation ${sat[$b]} rows/s, publishing $rows rows at $rate rows/s ($overload_s s)"
  echo
  echo "| backpressure | publisher achieved | rows taken by the chain | dropped | published - taken - dropped | streamprep peak RSS MB | Mosquitto peak RSS MB |"
  echo "|---|---|---|---|---|---|---|"
  for policy in block drop_oldest; do
    measure "$b" "$rate" "$rows" --backpressure $policy
    taken=$(field "rows in" "$summary" | tr -d ,)
    dropped=$(field dropped "$summary"); dropped=${dropped:-0}
    printf '| %s | %s | %s | %s | %s | %.0f | %.0f |\n' "$policy" "$pub_rate" "$taken" "$dropped" \
      $(( rows - taken - dropped )) "$(echo "$rss / 1024" | bc -l)" "$(echo "$mosq_rss / 1024" | bc -l)"
  done
fi
