#!/usr/bin/env bash
# Refresh the front-end libraries compiled into `streamprep serve` from npm, at the versions
# pinned here, and rewrite crates/serve/assets/vendor/MANIFEST.toml (version, licence, source,
# sha256 of each file). Needs npm and the network; building and running never do: the files
# are committed and compiled in with include_bytes!, and a test checks them against the
# manifest.
set -euo pipefail
UPLOT_VERSION=1.6.32

cd "$(dirname "$0")/../crates/serve/assets/vendor"
command -v npm >/dev/null || { echo "scripts/vendor.sh needs npm (Node.js)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "uplot@${UPLOT_VERSION}" --silent >/dev/null && tar xzf "uplot-${UPLOT_VERSION}.tgz")
mkdir -p uplot
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" uplot/

sha() { sha256sum "$1" | cut -d' ' -f1; }
cat > MANIFEST.toml <<TOML
# Front-end libraries compiled into streamprep serve: no CDN, no download at build or run time.
# Each file's sha256 is checked by a test (crates/serve/src/assets.rs). To update one: change its
# version in scripts/vendor.sh and run it (it takes the files from the npm package and rewrites
# this manifest).

[[library]]
name = "uPlot"
version = "${UPLOT_VERSION}"
licence = "MIT"
source = "npm package uplot@${UPLOT_VERSION} (dist/)"
files = [
    { path = "uplot/uPlot.iife.min.js", sha256 = "$(sha uplot/uPlot.iife.min.js)" },
    { path = "uplot/uPlot.min.css", sha256 = "$(sha uplot/uPlot.min.css)" },
    { path = "uplot/LICENSE", sha256 = "$(sha uplot/LICENSE)" },
]
TOML
echo "vendored uPlot ${UPLOT_VERSION}; check with: cargo test -p streamprep-serve assets"
