#!/usr/bin/env bash
# Build the C policies into components: `plugins/c/build.sh [out-dir]`
# (default out-dir: target/lang-plugins/c).
#
# Needs: clang and lld with a wasm32-wasi sysroot (Debian: `apt-get install clang lld wasi-libc
# libclang-rt-14-dev-wasm32`) and `uma-c-tools` from this workspace (built here with cargo):
#   1. `uma-c-tools bindings` writes policy.h/policy.c/policy_component_type.o for our WIT world
#      (wit-bindgen's C generator, 0.61.1 like the Rust SDK);
#   2. clang compiles each policy to a wasm32-wasi core module (a reactor: no `main`);
#   3. `uma-c-tools component` wraps it into a component with the WASI preview1 reactor adapter
#      of wasmtime 48.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$target/lang-plugins/c}
CC=${CC_WASM:-clang}
mkdir -p "$out"

(cd "$root" && cargo build --quiet --locked -p uma-c-tools)
tools=$target/debug/uma-c-tools

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$tools" bindings "$root/wit/v0.1.0" policy "$gen" >/dev/null

for src in allow-list claim-match owner-approval fx-loop; do
  extra=()
  [ "$src" = fx-loop ] || extra=("$here/json.c")
  "$CC" --target=wasm32-wasi -mexec-model=reactor -Os -std=c11 -Wall -Wextra -Werror \
    -Wno-unused-parameter -I"$gen" -I"$here" \
    -o "$gen/$src.core.wasm" "$here/$src.c" "${extra[@]}" "$gen/policy.c" \
    "$gen/policy_component_type.o" -Wl,--strip-debug
  "$tools" component "$gen/$src.core.wasm" "$out/$src.wasm"
done
