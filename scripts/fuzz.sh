#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ under libFuzzer.
#
#   scripts/fuzz.sh                 # every target for FUZZ_SECONDS (default 300) each
#   scripts/fuzz.sh token_form 3600 # one target for an hour
#   scripts/fuzz.sh --ci            # CI: every target for 15 s (FUZZ_SECONDS to change)
#
# The targets build on the pinned stable toolchain, in the test build's dev profile, with
# libFuzzer's coverage flags added by scripts/sancov-rustc to our code only (the targets and the
# uma-host library); every dependency is the test build's, optimised and uninstrumented. After
# `scripts/test` that is a ~30 s build, where cargo-fuzz's global flags (`cargo +nightly fuzz run
# <target>` also works: fuzz/ is a cargo-fuzz crate) rebuild wasmtime and Cranelift instrumented,
# 22 minutes here. No sanitizer: the code under test is safe Rust; coverage guidance and panics
# are what count.
#
# The targets' properties are in host/src/fuzzing.rs; their seeds in fuzz/corpus/*/seed-*, which
# host/tests/fuzz_smoke.rs also replays (with mutations) in every test run. A crash, an
# out-of-memory or a timeout leaves its input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TARGETS=(token_form claim_token resource_description plugin_output)
seconds=${FUZZ_SECONDS:-300}
ci=0
if [[ "${1:-}" == "--ci" ]]; then
  ci=1
  seconds=${FUZZ_SECONDS:-15}
elif [[ $# -ge 1 ]]; then
  TARGETS=("$1")
  seconds=${2:-$seconds}
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target_dir/fuzz-ci"

started=$(date +%s)
RUSTC_WRAPPER="$root/scripts/sancov-rustc" cargo build --locked -p uma-host-fuzz --bins 2>&1 |
  tee "$target_dir/fuzz-ci/build.log"
others=$(sed -n 's/^ *Compiling \([^ ]*\) .*/\1/p' "$target_dir/fuzz-ci/build.log" |
  grep -vx -e uma-host -e uma-host-fuzz -e libfuzzer-sys || true)
echo "fuzz: targets built in $(($(date +%s) - started)) s"
if [[ -n $others ]]; then
  # After the test build only our code should compile here: anything else means the feature
  # pins in fuzz/Cargo.toml no longer match the test build (or the test build has not run).
  echo "fuzz: also compiled, not reused from the test build: $(echo $others)"
fi

for t in "${TARGETS[@]}"; do
  # CI writes new inputs to a scratch corpus and only reads the committed seeds; a local run
  # grows fuzz/corpus/<target>/ (ignored by git but for the seed-* files).
  if ((ci)); then dirs=("$target_dir/fuzz-ci/corpus/$t" "fuzz/corpus/$t"); else dirs=("fuzz/corpus/$t"); fi
  mkdir -p "${dirs[@]}" "fuzz/artifacts/$t"
  log="$target_dir/fuzz-ci/$t.log"
  echo "== fuzz $t for ${seconds}s"
  status=0
  nice -n 19 "$target_dir/debug/$t" "${dirs[@]}" -max_total_time="$seconds" \
    -print_final_stats=1 -rss_limit_mb=4096 -artifact_prefix="fuzz/artifacts/$t/" \
    >"$log" 2>&1 || status=$?
  grep -E '^(INFO: Loaded [0-9]+ modules|#[0-9]+ *DONE|stat::number_of_executed_units|stat::new_units_added|.*(panicked|ERROR|SUMMARY|crash-|oom-|timeout-))' "$log" || true
  # Without coverage counters in uma-host (thousands of edges per target) libFuzzer would only be
  # feeding random bytes: fail rather than pretend.
  counters=$(sed -n 's/^INFO: Loaded [0-9]* modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$log" | head -1)
  if ((${counters:-0} < 1000)); then
    echo "fuzz $t: not instrumented for coverage (${counters:-no} counters); log in $log"
    exit 1
  fi
  if ((status != 0)); then
    echo "fuzz $t: libFuzzer exited with $status; input in fuzz/artifacts/$t/, log in $log"
    exit 1
  fi
done
