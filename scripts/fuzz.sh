#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer, nightly toolchain).
#
#   scripts/fuzz.sh                 # every target for FUZZ_SECONDS (default 300) each
#   scripts/fuzz.sh token_form 3600 # one target for an hour
#   scripts/fuzz.sh --ci            # CI: every target for 20 s, if a nightly toolchain is here
#
# The targets' properties are in host/src/fuzzing.rs; their seeds in fuzz/corpus/*/seed-*, which
# host/tests/fuzz_smoke.rs also replays (with mutations) on the stable toolchain in every test
# run. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(token_form claim_token resource_description plugin_output)
seconds=${FUZZ_SECONDS:-300}
if [[ "${1:-}" == "--ci" ]]; then
  seconds=${FUZZ_SECONDS:-20}
  shift
  if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain on this machine; the stable smoke run (host/tests/fuzz_smoke.rs) ran instead"
    exit 0
  fi
elif [[ $# -ge 1 ]]; then
  TARGETS=("$1")
  seconds=${2:-$seconds}
fi
export PATH="$root/target/cargo-fuzz/bin:$PATH"
if ! cargo-fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$root/target/cargo-fuzz"
fi
# The host's build script compiles the Wasm plugins with the pinned toolchain, not nightly.
export UMA_HOST_PLUGINS_CARGO=cargo
# No sanitizer: the code under test is safe Rust, and ASan-instrumenting wasmtime and cranelift
# would double the build for nothing; libFuzzer's coverage guidance and panics are what count.
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${seconds}s"
  nice -n 19 cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 2>&1 | grep -E '^(==|#[0-9]+ *DONE|stat::number_of_executed_units|INFO: .*corpus|.*(panicked|ERROR|SUMMARY|crash-))' || true
  if compgen -G "artifacts/$t/crash-*" > /dev/null; then
    echo "fuzz $t: crash found, input in fuzz/artifacts/$t/"; exit 1
  fi
done
