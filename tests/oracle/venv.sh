#!/usr/bin/env bash
# Creates (once) and prints the path of the Python venv with the pinned oracle libraries.
# The venv lives outside the checkout so every clean checkout reuses it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${STREAMPREP_VENV:-$HOME/.cache/streamprep-venv}
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  command -v python3 >/dev/null || { echo "python3 is needed for the oracle: apt-get install python3 python3-venv" >&2; exit 1; }
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$stamp"
fi
echo "$venv"
