#!/usr/bin/env bash
# The test command (README.md): everything the tests need is set up here.
#  1. a Python venv with the pinned pandas / scikit-learn and schemathesis (tests/oracle/venv.sh; python3 and
#     python3-venv from apt-get when missing), and the golden
#     files regenerated from it (tests/oracle/make_golden.py);
#  2. formatting and lints (cargo fmt --check, cargo clippy -D warnings);
#  3. Mosquitto (mosquitto, mosquitto_pub, mosquitto_sub), openssl (the TLS test makes its
#     certificates), redis-server and redis-cli (the queue method) on PATH, installed with apt-get when
#     missing, and PostgreSQL's initdb/pg_ctl (package postgresql); the tests start their own
#     broker, Redis and PostgreSQL on free ports; Debian's chromium and chromium-driver for the
#     browser tests (driven through chromedriver on a free port); iproute2 (ip, tc, ss) and nftables
#     (nft) for the test hosts in network namespaces (tests/it/hosts.rs, streamprep-netlab; needs root);
#  4. the whole test suite (unit, conformance, golden, CLI, framed TCP, MQTT, queue, capacity).
# Set STREAMPREP_SKIP_ORACLE=1 to reuse the committed golden files without Python.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streamprep-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

command -v cargo >/dev/null || { echo "cargo is needed: install Rust from https://rustup.rs" >&2; exit 1; }

if [ "${STREAMPREP_SKIP_ORACLE:-0}" != 1 ]; then
  echo "== oracle: pandas / scikit-learn golden files"
  venv=$(tests/oracle/venv.sh)
  "$venv/bin/python" tests/oracle/make_golden.py
  if ! git diff --quiet -- tests/data/golden 2>/dev/null; then
    echo "note: regenerated golden files differ from the committed ones (git diff tests/data/golden)" >&2
  fi
fi

echo "== services: mosquitto, openssl, redis-server, postgresql (initdb, pg_ctl, psql), chromium + chromedriver, iproute2, nftables"
# Debian's package keeps mosquitto in /usr/sbin
export PATH="$PATH:/usr/sbin"
missing=()
for tool in mosquitto:mosquitto mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients openssl:openssl redis-server:redis-server redis-cli:redis-tools psql:postgresql-client ip:iproute2 tc:iproute2 ss:iproute2 nft:nftables; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
# the store tests start a private PostgreSQL with Debian's initdb and pg_ctl
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# the browser tests drive Debian's Chromium through its chromedriver (no browser download)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  for tool in mosquitto mosquitto_pub mosquitto_sub openssl redis-server redis-cli psql ip tc ss nft; do
    command -v $tool >/dev/null || {
      echo "the tests need $tool: install the packages mosquitto, mosquitto-clients, openssl, redis-server, redis-tools, postgresql-client, iproute2 and nftables" >&2; exit 1; }
  done
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || {
    echo "the tests need PostgreSQL's initdb: install the package postgresql" >&2; exit 1; }
  for tool in chromium chromedriver; do
    command -v $tool >/dev/null || {
      echo "the browser tests need $tool: install the packages chromium and chromium-driver" >&2; exit 1; }
  done
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets --quiet
cargo test --workspace --doc --quiet
echo "== all tests passed"
