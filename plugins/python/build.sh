#!/usr/bin/env bash
# Build the Python policies into components: `plugins/python/build.sh [out-dir]`
# (default out-dir: target/lang-plugins/python).
#
# Needs componentize-py 0.25.1 (`pip install componentize-py==0.25.1`), which embeds CPython
# compiled to WebAssembly: each component is ~18 MB and takes a few seconds to build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-${CARGO_TARGET_DIR:-$root/target}/lang-plugins/python}
mkdir -p "$out"

version=$(componentize-py --version 2>/dev/null || true)
case "$version" in
  *0.25.1*) ;;
  *) echo "componentize-py 0.25.1 is required (found: ${version:-none}); pip install componentize-py==0.25.1" >&2; exit 1 ;;
esac

# CPython imports all of wasi:cli/imports, sockets included, whatever the policy does; the host
# links sockets to a context that refuses every one (host/src/runtime/ingest.rs).
# A component is rebuilt only when its sources, the WIT or the toolchain changed: each build
# takes seconds.
for policy in allow-list claim-match owner-approval fx-loop; do
  stamp=$( (echo "$version"; cat "$root"/wit/v0.1.0/*.wit "$here/$policy"/*.py) | sha256sum | cut -c1-64)
  if [ -f "$out/$policy.wasm" ] && [ "$(cat "$out/$policy.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "$out/$policy.wasm is up to date"
    continue
  fi
  componentize-py -d "$root/wit/v0.1.0" -w policy componentize -p "$here/$policy" app \
    -o "$out/$policy.wasm" >/dev/null
  echo "$stamp" > "$out/$policy.stamp"
  echo "$out/$policy.wasm ($(wc -c < "$out/$policy.wasm") bytes)"
done
