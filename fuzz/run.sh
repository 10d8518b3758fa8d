#!/usr/bin/env bash
# Fuzz every target (or those named) for SECONDS each (default 1800) or 10^7 executions, whichever
# comes first, then merge what it found into the kept corpus (fuzz/corpus/<target>, minimized).
# Crashes land in fuzz/artifacts/<target>/; copy each into fuzz/regressions/<target>/ once fixed,
# so `cargo test` replays it. Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags.
#   usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-1800}; shift || true
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(ndjson csv framed zlib_base64 project mqtt_payload queue_wire)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-fuzz-target}
RUSTC_BOOTSTRAP=1 cargo fuzz build -O >/dev/null
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
for t in "${targets[@]}"; do
  work=$(mktemp -d); mkdir -p "artifacts/$t" "corpus/$t"
  start=$(date +%s)
  "$bin/$t" "$work" "corpus/$t" -max_total_time="$secs" -runs=10000000 -max_len=65536 \
    -rss_limit_mb=2048 -timeout=10 -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"log-$t.txt" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "log-$t.txt")
  echo "$t: $execs executions in $(( $(date +%s) - start )) s, crashes: $(ls "artifacts/$t" | wc -l)"
  "$bin/$t" -merge=1 "corpus/$t" "$work" >/dev/null 2>&1 || true
  rm -rf "$work"
done
