#!/usr/bin/env bash
# Creates (once) and prints the path of the Python venv with the pinned oracle libraries.
# The venv lives outside the checkout so every clean checkout reuses it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${STREAMPREP_VENV:-$HOME/.cache/streamprep-venv}
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  # Debian's python3 comes without venv/ensurepip (package python3-venv): install what is missing
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
    if command -v apt-get >/dev/null; then
      $sudo apt-get update -qq >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2 || true
    fi
  fi
  command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null ||
    { echo "python3 with venv is needed for the oracle: install the packages python3 and python3-venv" >&2; exit 1; }
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$stamp"
fi
echo "$venv"
