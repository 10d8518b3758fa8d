#!/usr/bin/env bash
# Issue 20: the paper's own distributed method against streamprep's queue, on the same test
# hosts (streamprep-netlab: Redis in the hub, one worker host behind a link of each profile).
# The paper's way (bench/celery/: a Celery chain of one subtask per step, a DataFrame as JSON
# through Redis between subtasks, pinned versions) with a Celery worker of 2 processes; ours:
# `streamprep worker --concurrency 2` on the same host. The paper's chain
# (fillna_zeros,normalizer,drop_duplicates) at b = 1, 100 and 10,000:
#   one: a message at a time (Celery: send the chain, wait for the result; streamprep:
#        `profile --method queue`, the mean service time a message);
#   all: every message at once (wall time / messages; streamprep: `run --method queue`).
# Needs root, iproute2, redis-server, python3-venv. Usage: bench/celery.sh [PROFILE ...]
. "$(dirname "$0")/lab_lib.sh"
venv=${CELERY_VENV:-$HOME/.cache/streamprep-celery-venv}
if [ ! -x "$venv/bin/celery" ] || ! cmp -s bench/celery/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/celery/requirements.txt
  cp bench/celery/requirements.txt "$venv/requirements.txt"
fi
messages() { # PROFILE BUFFER
  case "$1:$2" in
    *:10000) echo 5;; wan:*) echo 20;; *) echo 50;;
  esac
}

echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f1-3); celery $("$venv/bin/python" -c 'import celery; print(celery.__version__)'); $(date -u +%F)"
echo
echo "| link | buffer | messages | Celery one ms/msg | streamprep one ms/msg | ratio | Celery all ms/msg | streamprep all ms/msg | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for prof in "${@:-rack lan wan}"; do
  for p in $prof; do
    "$lab_bin" up "$lab" "w1=$p"
    url=$("$lab_bin" url "$lab" w1)
    declare -A cel_one=() cel_all=()
    # Celery first (its worker alone on the host), then streamprep's
    (cd bench/celery && CELERY_BROKER=$url/0 PYTHONPATH=. exec ip netns exec "$lab-w1" "$venv/bin/celery" -A tasks worker \
      --concurrency 2 --pool prefork --without-heartbeat --without-gossip --without-mingle -l WARNING >"$work/celery.log" 2>&1) &
    pids+=($!)
    for b in 1 100 10000; do
      n=$(messages "$p" "$b")
      for m in one all; do
        r=$(cd bench/celery && CELERY_BROKER=redis://127.0.0.1:6379/0 ip netns exec "$lab-hub" "$venv/bin/python" driver.py \
          "../../$out/750k.ndjson" "$b" "$n" "$m" "$chain" "$work/celery.out" | tail -1)
        if [ "$m" = one ]; then cel_one[$b]=$(cut -d' ' -f3 <<< "$r"); else cel_all[$b]=$(cut -d' ' -f3 <<< "$r"); fi
      done
    done
    stop_all
    ip netns exec "$lab-w1" "$bin" worker --broker "$url" --concurrency 2 2>/dev/null &
    pids+=($!)
    sleep 0.5
    ip netns exec "$lab-hub" "$bin" profile --chain "$chain" --method queue --broker redis://127.0.0.1:6379 \
      --buffers 1,100,10000 --messages "$(messages "$p" 1)" --input "$out/750k.ndjson" \
      --csv "$work/profile.csv" --plot "$work/profile.svg" >/dev/null 2>&1
    for b in 1 100 10000; do
      n=$(messages "$p" "$b")
      one=$(awk -F, -v b="$b" '$1 == "queue" && $2 == b && $3 == "chain" { printf "%.3f", $5 / 1000 }' "$work/profile.csv")
      head -n $((b * n)) "$out/750k.ndjson" > "$work/in.ndjson"
      # the run's own seconds (its summary), process start excluded as Celery's driver excludes its own
      all=$(ip netns exec "$lab-hub" "$bin" run --source "file:$work/in.ndjson" --chain "$chain" --buffer "$b" \
        --sink "file:$work/o.ndjson" --method queue --broker redis://127.0.0.1:6379 2>&1 \
        | sed -n 's/.*messages \([0-9]*\),.* \([0-9.]*\) s, .*/\2 \1/p' | awk '{ printf "%.3f", $1 / $2 * 1000 }')
      printf '| %s | %s | %s | %s | %s | %.0fx | %s | %s | %.0fx |\n' "$p" "$b" "$n" "${cel_one[$b]}" "$one" \
        "$(awk -v c="${cel_one[$b]}" -v s="$one" 'BEGIN{print c/s}')" "${cel_all[$b]}" "$all" \
        "$(awk -v c="${cel_all[$b]}" -v s="$all" 'BEGIN{print c/s}')"
    done
    stop_all
    "$lab_bin" down "$lab"
  done
done
