#!/usr/bin/env bash
# Issue 20: the queue method across network links, on test hosts in network namespaces
# (streamprep-netlab: a hub with Redis and the coordinator, a namespace per worker host, veth
# links with a tbf rate both ways and a delaying proxy for the round trip). For each link
# profile (rack 0.2 ms / 10 Gbit/s, lan 2 ms / 1 Gbit/s, wan 20 ms / 100 Mbit/s):
#   - the measured round trip to Redis from a worker host (redis-cli --latency, through the link);
#   - rows/s of the paper's chain (fillna_zeros,normalizer,drop_duplicates) at buffer 100 and
#     10,000, with 1 and 2 worker hosts (a worker with 2 threads on each), tasks plain, LZ4 and
#     --task-compression auto (LZ4 once the workers are 1 ms or more from Redis);
# and beside them the pool (2 threads) on one host, no network. Needs root, iproute2, nftables,
# redis-server. Usage: bench/hosts.sh [PROFILE ...]
. "$(dirname "$0")/lab_lib.sh"

# rows/s of a run: ROWS BUFFER HOST-OR-- ARGS... (HOST: the namespace it runs in; -- here)
rate() {
  local n=$1 b=$2 where=$3; shift 3
  head -n "$n" "$out/750k.ndjson" > "$work/in.ndjson"
  local pre=()
  [ "$where" != -- ] && pre=(ip netns exec "$lab-$where")
  local t0 t1
  t0=$(date +%s.%N)
  "${pre[@]}" "$bin" run --source "file:$work/in.ndjson" --chain "$chain" --buffer "$b" \
    --sink "file:$work/o.ndjson" "$@" 2>/dev/null
  t1=$(date +%s.%N)
  awk -v n="$n" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", n / (z - a) }'
}
# rows for about 3-8 s a run
rows() { # PROFILE BUFFER
  case "$1:$2" in
    rack:100) echo 200000;; lan:100) echo 100000;; wan:100) echo 20000;;
    wan:*) echo 300000;; *) echo 750000;;
  esac
}

echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f1-3); $(date -u +%F)"
echo
pool100=$(rate 200000 100 -- --method pool --workers 2)
pool10k=$(rate 750000 10000 -- --method pool --workers 2)
echo "pool (2 threads), one host: b=100 $pool100 rows/s, b=10000 $pool10k rows/s"
echo
echo "| link | measured RTT ms | buffer | worker hosts | plain rows/s | LZ4 rows/s | auto rows/s | plain / pool | LZ4 / pool | auto / pool |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for p in "${@:-rack lan wan}"; do
  for prof in $p; do
    "$lab_bin" up "$lab" "w1=$prof" "w2=$prof"
    url1=$("$lab_bin" url "$lab" w1)
    rtt=$(timeout 3 ip netns exec "$lab-w1" redis-cli -u "$url1" --latency -i 1 2>/dev/null | awk '{print $3}' | tail -1 || true)
    for b in 100 10000; do
      n=$(rows "$prof" "$b")
      pool=$([ "$b" = 100 ] && echo "$pool100" || echo "$pool10k")
      for hosts in 1 2; do
        for h in $(seq "$hosts"); do
          ip netns exec "$lab-w$h" "$bin" worker --broker "$("$lab_bin" url "$lab" "w$h")" --concurrency 2 2>/dev/null &
          pids+=($!)
        done
        sleep 0.5
        plain=$(rate "$n" "$b" hub --method queue --broker redis://127.0.0.1:6379)
        lz4=$(rate "$n" "$b" hub --method queue --broker redis://127.0.0.1:6379 --task-compression lz4)
        auto=$(rate "$n" "$b" hub --method queue --broker redis://127.0.0.1:6379 --task-compression auto)
        stop_all
        ratio() { awk -v a="$1" -v p="$pool" 'BEGIN{printf "%.2f", a/p}'; }
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$prof" "$rtt" "$b" "$hosts" "$plain" "$lz4" "$auto" \
          "$(ratio "$plain")" "$(ratio "$lz4")" "$(ratio "$auto")"
      done
    done
    "$lab_bin" down "$lab"
  done
done
