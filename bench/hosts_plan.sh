#!/usr/bin/env bash
# Issue 20: `plan` for the queue across links, validated on the test hosts (streamprep-netlab).
#   1. `profile --method queue` with the worker beside Redis (the hub): service, busy time and the
#      bytes of a task and a result at b = 100 and 10,000;
#   2. for each setting (link profile, buffer, worker hosts; a worker of 2 threads a host):
#      plan's prediction from that profile with the link (--link-rtt: the round trip measured
#      through the link, --link-bandwidth, --worker-hosts) at an arrival rate of 60% of the
#      predicted maximum, against
#        - the measured rho: that rate / the rows/s the setting reaches with every row at once
#          (a saturated run: rho = lambda / (c mu));
#        - the measured mean row latency of a run paced at that rate (`run --rate`; so plan is
#          told `--arrivals regular`: a paced stream's messages come evenly, G/G/c).
#      Settings with LZ4 (`--task-compression lz4` for plan and run) use the profile's LZ4 sizes.
# Needs root, iproute2, redis-server. Usage: bench/hosts_plan.sh
. "$(dirname "$0")/lab_lib.sh"
hub() { ip netns exec "$lab-hub" "$@"; }
broker=redis://127.0.0.1:6379
workers_on() { # HOSTS...
  local h
  for h in "$@"; do
    ip netns exec "$lab-$h" "$bin" worker --broker "$("$lab_bin" url "$lab" "$h")" --concurrency 2 2>/dev/null &
    pids+=($!)
  done
  sleep 0.5
}

echo "machine: $(nproc) cores, $(uname -r); $(date -u +%F)"
# 1. the profile with the worker beside Redis
"$lab_bin" up "$lab"
ip netns exec "$lab-hub" "$bin" worker --broker "$broker" --concurrency 2 2>/dev/null &
pids+=($!)
sleep 0.5
hub "$bin" profile --chain "$chain" --method queue --broker "$broker" --buffers 100,10000 --messages 40 \
  --input "$out/750k.ndjson" --csv "$work/local.csv" --plot "$work/local.svg" >/dev/null 2>&1
stop_all
"$lab_bin" down "$lab"
echo
echo "the profile (worker beside Redis):"
echo '```'
grep -E '^method|,(chain|busy),' "$work/local.csv"
echo '```'
echo
echo "| link | bandwidth | measured RTT ms | buffer | worker hosts | threads | compression | rows/s asked | predicted max rows/s | measured max rows/s | predicted rho | measured rho | rho error | predicted latency ms | measured latency ms | latency error |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
settings=(
  "rack 10gbit 100 1"
  "rack 10gbit 10000 1"
  "lan 1gbit 100 1"
  "lan 1gbit 10000 1"
  "lan 1gbit 100 2"
  "lan 1gbit 10000 2"
  "wan 100mbit 100 1"
  "wan 100mbit 100 2"
  "wan 100mbit 10000 1"
  "wan 100mbit 10000 2"
  "lan 1gbit 10000 1 lz4"
  "wan 100mbit 100 1 lz4"
  "wan 100mbit 10000 1 lz4"
  "wan 100mbit 10000 2 lz4"
)
for s in "${settings[@]}"; do
  read -r prof bw b hosts z <<< "$s"
  z=${z:-none}
  names=(); for h in $(seq "$hosts"); do names+=("w$h=$prof"); done
  "$lab_bin" up "$lab" "${names[@]}"
  rtt=$(timeout 3 ip netns exec "$lab-w1" redis-cli -u "$("$lab_bin" url "$lab" w1)" --latency -i 1 2>/dev/null | awk '{print $3}' | tail -1 || true)
  c=$((2 * hosts))
  plan() { # RATE -> "rho latency_ms max_rate"
    "$bin" plan --profile "$work/local.csv" --arrival-rate "$1" --workers "$c" --method queue \
      --link-rtt "${rtt}ms" --link-bandwidth "$bw" --worker-hosts "$hosts" --arrivals regular \
      --task-compression "$z" --json \
      | python3 -c '
import json, sys
v = json.load(sys.stdin); b = int(sys.argv[1])
s = next(x for x in v["settings"] if x["buffer"] == b)
print(s["rho"], s["latency_ms"], s["max_rate_rows_per_s"])' "$b"
  }
  read -r _ _ pmax <<< "$(plan 1000)"
  rate=$(awk -v m="$pmax" 'BEGIN { printf "%.0f", 0.6 * m }')
  read -r prho plat _ <<< "$(plan "$rate")"
  hw=(); for h in $(seq "$hosts"); do hw+=("w$h"); done
  workers_on "${hw[@]}"
  # saturated: about 4 s of rows at the predicted maximum, at least 20 messages
  n=$(awk -v m="$pmax" -v b="$b" 'BEGIN { n = int(4 * m); if (n < 20 * b) n = 20 * b; if (n > 750000) n = 750000; print n }')
  head -n "$n" "$out/750k.ndjson" > "$work/in.ndjson"
  secs=$(hub "$bin" run --source "file:$work/in.ndjson" --chain "$chain" --buffer "$b" --sink "file:$work/o.ndjson" \
    --method queue --broker "$broker" --task-compression "$z" 2>&1 | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
  mmax=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  # paced at the rate: about 5 s, at least 20 messages
  n=$(awk -v r="$rate" -v b="$b" 'BEGIN { n = int(5 * r); if (n < 20 * b) n = 20 * b; if (n > 750000) n = 750000; print n }')
  head -n "$n" "$out/750k.ndjson" > "$work/in.ndjson"
  lat=$(hub "$bin" run --source "file:$work/in.ndjson" --rate "$rate" --max-wait 30s --chain "$chain" --buffer "$b" \
    --sink "file:$work/o.ndjson" --method queue --broker "$broker" --task-compression "$z" 2>&1 \
    | sed -n 's/.*row latency mean \([0-9.]*\) ms.*/\1/p')
  stop_all
  "$lab_bin" down "$lab"
  mrho=$(awk -v r="$rate" -v m="$mmax" 'BEGIN { printf "%.3f", r / m }')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %.3f | %s | %+.0f%% | %.2f | %.2f | %+.0f%% |\n' \
    "$prof" "$bw" "$rtt" "$b" "$hosts" "$c" "$z" "$rate" "$pmax" "$mmax" "$prho" "$mrho" \
    "$(awk -v p="$prho" -v m="$mrho" 'BEGIN { print (p - m) / m * 100 }')" "$plat" "$lat" \
    "$(awk -v p="$plat" -v m="$lat" 'BEGIN { print (p - m) / m * 100 }')"
done
