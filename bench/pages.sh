#!/usr/bin/env bash
# The pages' benchmark: `streamprep demo` at 1,000 rows/s on a release build, its app in Debian's
# Chromium through chromedriver: the publish-to-chart latency of the points on the project
# page over a minute (each row carries its publish time, sent_us; the page records when each
# point was drawn), the overview's weight and render time, and the screenshots in
# docs/screenshots/. Needs chromium and chromium-driver (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo test --release --test it browser::bench_pages_latency_weight_and_screenshots -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -E "overview:|publish to chart|rows/s in|test result"
