#!/usr/bin/env bash
# Seed 004 on streamprep: ./examples/seed004/run.sh WORKERS IN.csv OUT.csv [STREAMPREP]
# (from the repository's root; STREAMPREP defaults to target/release/streamprep, PYTHON to
# python3; BUFFER, the rows a message, to the project's 100)
set -euo pipefail
workers=$1 in=$2 out=$3
bin=${4:-${CARGO_TARGET_DIR:-target}/release/streamprep}
py=${PYTHON:-python3}
dir=$(cd "$(dirname "$0")" && pwd)
src=${SRC_PORT:-7100} dst=${DST_PORT:-7200}
"$py" "$dir/receive.py" "$dst" "$out" > "$out.receiver.log" 2>&1 &
receiver=$!
until grep -q listening "$out.receiver.log" 2>/dev/null; do sleep 0.02; done
"$bin" run "$dir/project.toml" --workers "$workers" --buffer "${BUFFER:-100}" --quiet \
  --source "tcp-listen:127.0.0.1:$src" --sink "tcp:127.0.0.1:$dst" \
  --chain "exec{\"command\": [\"$py\", \"$dir/classify_step.py\"], \"format\": \"arrow\", \"timeout\": \"5m\"}" &
run=$!
"$py" "$dir/send.py" "$in" 127.0.0.1 "$src"
wait $run
wait $receiver
rm -f "$out.receiver.log"
