# Sourced by the benches on test hosts (hosts.sh, hosts_plan.sh, celery.sh): builds streamprep and
# streamprep-netlab (release), the 750,000-row input, a scratch folder in /dev/shm, the name of a
# lab owned by this shell ($lab), the background processes to stop ($pids, stop_all) and the
# cleanup on exit (the lab taken down even when the bench fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
cargo build --release --quiet --bin streamprep --bin streamprep-netlab
bin=$CARGO_TARGET_DIR/release/streamprep
lab_bin=$CARGO_TARGET_DIR/release/streamprep-netlab
chain=fillna_zeros,normalizer,drop_duplicates
out=bench/out; mkdir -p "$out"
[ -s "$out/750k.ndjson" ] || "$bin" gen --rows 750000 --seed 1 --out "$out/750k.ndjson"
work=$(mktemp -d /dev/shm/streamprep-lab.XXXXXX)
lab=spl$$x0
pids=()
stop_all() { local q; for q in "${pids[@]}"; do kill -INT "$q" 2>/dev/null || true; wait "$q" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; "$lab_bin" down "$lab" 2>/dev/null; rm -rf "$work"' EXIT
