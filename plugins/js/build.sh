#!/usr/bin/env bash
# Build the JavaScript policies into components: `plugins/js/build.sh [out-dir]`
# (default out-dir: target/lang-plugins/js).
#
# Needs Node.js with npm; installs componentize-qjs (QuickJS, pinned in package-lock.json)
# with `npm ci` into target/lang-tools/js, outside the source tree. `--sync` builds a component
# without the component-model async ABI, which the host refuses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$target/lang-plugins/js}
tools=$target/lang-tools/js
mkdir -p "$out" "$tools"

if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" || [ ! -d "$tools/node_modules" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --silent)
fi

for policy in allow-list claim-match owner-approval fx-loop; do
  "$tools/node_modules/.bin/componentize-qjs" --sync --wit "$root/wit/v0.1.0" --world policy \
    --js "$here/$policy.js" --output "$out/$policy.wasm" >/dev/null
  echo "$out/$policy.wasm ($(wc -c < "$out/$policy.wasm") bytes)"
done
