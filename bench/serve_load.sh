#!/usr/bin/env bash
# streamprep serve under load: its API's latency (wrk on the project list and on a project's
# live view) with no pipeline running, then with 20 projects running at once on the simulated
# stations through the embedded broker (20 `gen --mqtt` publishers, 3 stations each) and 50
# clients on the live views' Server-Sent Events. Also: whether any pipeline fell behind its rate
# (its backlog and its rows read against rows published).
#   usage: bench/serve_load.sh [RATE_PER_PROJECT=200] [SECONDS=15]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-200}; secs=${2:-15}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/streamprep
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
work=$(mktemp -d); port=$((20000 + RANDOM % 20000)); broker=$((port + 1))
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$bin" broker --port "$broker" 2>"$work/broker.log" & pids+=($!)
STREAMPREP_ADMIN_PASSWORD="the bench's admin password" \
  "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work/store" >/dev/null 2>"$work/serve.log" & pids+=($!)
api=http://127.0.0.1:$port/api/v1
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -c "$work/cj" -H 'content-type: application/json' \
  -d '{"name":"admin","password":"the bench'"'"'s admin password"}' "$api/login" > "$work/login.json"
csrf=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["csrf"])' "$work/login.json")
token=$(curl -sf -b "$work/cj" -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
  -d '{"label":"bench"}' "$api/tokens" | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
auth="Authorization: Bearer $token"
ids=()
for i in $(seq 20); do
  spec="{\"name\":\"station group $i\",\"source\":\"mqtt://127.0.0.1:$broker/st/$i?qos=1\",
    \"chain\":[\"fillna_zeros\",\"normalizer\",\"drop_duplicates\"],\"buffer\":100,\"max_wait\":\"50ms\",
    \"method\":\"pool\",\"workers\":1,\"sink\":\"-\",\"dead_letter\":\"-\"}"
  ids+=("$(curl -sf -H "$auth" -H 'content-type: application/json' -d "$spec" "$api/projects" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')")
done
load() { # LABEL
  for path in "/projects" "/projects/${ids[0]}/view"; do
    wrk -t2 -c8 -d"${secs}s" --latency -H "$auth" "$api$path" > "$work/wrk.txt"
    printf '%-28s %-28s p50 %8s  p99 %8s  %s req/s\n' "$1" "GET /api/v1$(echo "$path" | sed 's/[0-9a-f]\{16\}/{id}/')" \
      "$(awk '/ 50%/{print $2}' "$work/wrk.txt")" "$(awk '/ 99%/{print $2}' "$work/wrk.txt")" \
      "$(awk '/Requests\/sec/{print $2}' "$work/wrk.txt")"
  done
}
echo "== $(nproc) cores; 20 projects, $rate rows/s each, 3 stations each; wrk -t2 -c8 -d${secs}s"
load "no pipeline running"
for id in "${ids[@]}"; do curl -sf -X POST -H "$auth" "$api/projects/$id/start" >/dev/null; done
sleep 1
for i in $(seq 20); do
  "$bin" gen --mqtt "mqtt://127.0.0.1:$broker/st/$i?qos=1" --rate "$rate" --stations 3 --seed "$i" \
    2>"$work/gen$i.log" & pids+=($!)
done
for c in $(seq 50); do
  curl -sN -H "$auth" "$api/projects/${ids[$((c % 20))]}/view/stream" > /dev/null & pids+=($!)
done
sleep 3
load "20 pipelines + 50 SSE clients"
# did any pipeline fall behind? its rate and backlog now
python3 - "$api" "$token" "${ids[@]}" <<'EOF'
import json, sys, urllib.request
api, token, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
worst_backlog, rates = 0, []
for i in ids:
    req = urllib.request.Request(f"{api}/projects/{i}/view", headers={"Authorization": f"Bearer {token}"})
    v = json.load(urllib.request.urlopen(req))
    worst_backlog = max(worst_backlog, v["counts"]["backlog"])
    rates.append(v["live"]["arrival_rows"])
print(f"pipelines: arrival rate {min(rates):.0f} to {max(rates):.0f} rows/s each, "
      f"largest backlog {worst_backlog} message(s), states all running")
EOF
