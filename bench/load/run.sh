#!/usr/bin/env bash
# The load harness: drives real flows over loopback HTTP against a release build of uma-host with
# wrk, measures the peer (oidc-provider) in the same run, before and after our scenarios, and
# prints one table with ratios against the faster of the peer's two runs.
#
#   bench/load/run.sh                 # 15 s per scenario
#   DURATION=5 bench/load/run.sh      # shorter
#   bench/load/run.sh --smoke         # 2 s each on the debug build, fails on any error (CI)
#   ONLY=co-tenant,rpt bench/load/run.sh   # some of: basic grant flow co-tenant rpt peer
#   UMA_HOST_BIN=/tmp/uma-host-before bench/load/run.sh   # another build, for before/after runs
#   MODULES=1000 bench/load/run.sh    # first store 1,000 distinct owner modules (~3-4 min)
#   PACED_PERCENT=15 ONLY=grant bench/load/run.sh   # the paced grant run at 15 % of the peak, not 50
#
# The rss_mb column is the server's highest RSS while a scenario ran (sampled every 0.2 s).
#
# Needs wrk (Debian `wrk`), node and npm (the peer is installed from npm into a scratch folder),
# curl and jq. Everything listens on 127.0.0.1 only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
SMOKE=0
PROFILE=${PROFILE:-release}
# The smoke run checks that every scenario runs without errors, not speed: it uses the debug
# build the tests already made instead of a release build that would take minutes in CI.
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; DURATION=2; PROFILE=${SMOKE_PROFILE:-debug}; fi
PORT=${PORT:-18080}
PEER_PORT=${PEER_PORT:-13000}
# The harness's own files (tickets wrk collects, tens of MB; results; logs) go to memory where the
# machine has a tmpfs: written to the server's disk, the kernel's writeback of them 30 s later
# competed with the server's flushes and stalled scenarios for up to a second. The server's data
# directory stays on disk, since its flushes are part of what is measured.
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
data=$(mktemp -d)
results="$work/results.jsonl"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work" "$data"; }
trap cleanup EXIT
export BENCH_DIR="$here"

for tool in wrk curl jq node npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk curl jq nodejs npm)" >&2; exit 1; }
done

if [[ -n ${UMA_HOST_BIN:-} ]]; then
  : # a build given by the caller: compare two builds minutes apart on the same machine
elif [[ $PROFILE == release ]]; then
  ( cd "$root" && cargo build --release -q -p uma-host )
else
  # The binary the workspace's tests use (`cargo build -p uma-host` alone unifies features
  # differently and would rebuild wasmtime for minutes after the tests).
  ( cd "$root" && cargo test -q --workspace --exclude uma-host-fuzz --locked --no-run 2>/dev/null )
fi
bin="${UMA_HOST_BIN:-${CARGO_TARGET_DIR:-$root/target}/$PROFILE/uma-host}"
AS="http://127.0.0.1:$PORT"
cat > "$work/uma-host.toml" <<TOML
issuer = "$AS"
listen = "127.0.0.1:$PORT"
data_dir = "$data"
# One client at tens of thousands of requests per second is the point here.
rate_limit_per_sec = 0
store_cache_bytes = ${STORE_CACHE_BYTES:-8388608}
ticket_lifetime_secs = 3600
[[clients]]
client_id = "bench-rs"
client_secret = "bench-rs-secret-0123456789"
[[clients]]
client_id = "bench-app"
client_secret = "bench-app-secret-0123456789"
# The co-tenant scenario's attacker: another resource server, so another resource owner.
[[clients]]
client_id = "bench-evil"
client_secret = "bench-evil-secret-0123456789"
$(for i in 0 1 2 3; do printf '[[clients]]\nclient_id = "bench-owner-%s"\nclient_secret = "bench-owner-secret-0123456789"\n' "$i"; done)
[policy]
# MODULES=1000 stores 250 modules for each of four owners.
max_modules_per_owner = 250
[runtime]
max_concurrent_evaluations_per_owner = ${PER_OWNER:-2}
${RUNTIME_TOML:-}
TOML
RUST_LOG=warn "$bin" serve --config "$work/uma-host.toml" > "$work/server.log" 2>&1 &
server=$!; pids+=("$server")
for _ in $(seq 100); do curl -sf "$AS/healthz" >/dev/null && break; sleep 0.1; done
# Another server left on the port would answer the health check: make sure it is ours.
kill -0 "$server" 2>/dev/null || { echo "uma-host did not start (port $PORT taken?):" >&2; cat "$work/server.log" >&2; exit 1; }
trap 'echo "load harness failed at line $LINENO; server log:" >&2; tail -20 "$work/server.log" >&2' ERR

want() { [[ -z ${ONLY:-} || ",$ONLY," == *",$1,"* ]]; }
# peak_rss pid file: writes the highest RSS (MB) of pid to file, sampling every 0.2 s until killed
# (from /proc with shell builtins, so the sampler itself costs next to nothing).
peak_rss() {
  local max=0 k v _
  while [[ -r /proc/$1/status ]]; do
    while read -r k v _; do
      [[ $k == VmRSS: ]] && (( v / 1024 > max )) && { max=$((v / 1024)); echo "$max" > "$2"; }
    done < "/proc/$1/status"
    sleep 0.2
  done
}
# with_peak_rss pid cmd...: runs cmd, then prints the pid's highest RSS while it ran; fails if cmd did
with_peak_rss() {
  local pid=$1 f sampler rc=0; shift
  f=$(mktemp -p "$work" rss.XXXXXX); echo 0 > "$f"
  peak_rss "$pid" "$f" & sampler=$!
  "$@" || rc=$?
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  cat "$f"
  return "$rc"
}
rss() { ps -o rss= -p "$1" | awk '{printf "%.0f", $1/1024}'; }
measure() { # name script [env...]: runs wrk, appends its JSON line plus the server's peak RSS
  local name=$1 script=$2 out peak; shift 2
  out=$(mktemp -p "$work" wrk.XXXXXX)
  peak=$(with_peak_rss "${TARGET_PID:-$server}" run_wrk "$out" "$@")
  grep '^{' "$out" | jq -c --arg rss "$peak" '. + {rss_mb: ($rss|tonumber)}' >> "$results"
}
run_wrk() { # out [env...]: (name and script from measure)
  local out=$1; shift
  env "$@" SCENARIO="$name" WRK_THREADS=1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$here/$script" "${URL:-$AS}${PATH_:-}" > "$out"
}

# Setup: a PAT, a resource, the built-in allow-list policy bound to it (one Wasm policy).
PAT=$(curl -sf -u bench-rs:bench-rs-secret-0123456789 -d grant_type=client_credentials -d scope=uma_protection "$AS/token" | jq -r .access_token)
RID=$(curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
  -d '{"name":"bench","resource_scopes":["view","edit"]}' "$AS/resource_set" | jq -r ._id)
POLICY=$(curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
  -d '{"name":"bench-app","module":{"library":"builtin","name":"allow-list"},"config":{"client_ids":["bench-app"]}}' \
  "$AS/owner/policies" | jq -r .id)
curl -sf -X PUT -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
  -d "{\"bindings\":[{\"policy\":\"$POLICY\"}]}" "$AS/owner/resources/bench-rs/$RID/policy" >/dev/null
TICKET=$(curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
  -d "{\"resource_id\":\"$RID\",\"resource_scopes\":[\"view\"]}" "$AS/permission" | jq -r .ticket)
RPT=$(curl -sf -u bench-app:bench-app-secret-0123456789 -d grant_type=urn:ietf:params:oauth:grant-type:uma-ticket \
  -d "ticket=$TICKET" "$AS/token" | jq -r .access_token)

# MODULES=N: store N distinct owner modules before the scenarios (issue 6's RSS target is "with
# 1,000 stored modules, under load"): the allow-list component with a custom section carrying its
# number appended (changes nothing it does, gives it its own digest, so each is validated,
# compiled and stored on its own), uploaded by four owners, two at a time (the server's default
# compile concurrency). The scenarios then run beside them; none of them is bound or loaded.
if (( ${MODULES:-0} > 0 )); then
  allow="${CARGO_TARGET_DIR:-$root/target}/plugins/wasm32-wasip2/release/allow_list.wasm"
  leb128() { local v=$1 b; while :; do b=$((v & 127)); v=$((v >> 7)); (( v )) && b=$((b | 128)); printf '\\x%02x' "$b"; (( v )) || break; done; }
  upload() { # n
    local owner=$(( $1 % 4 )) payload="$1" f="$work/module-$1.wasm" name_len=9
    cp "$allow" "$f"
    local content_len=$(( 1 + name_len + ${#payload} ))
    printf "\\x00$(leb128 "$content_len")$(leb128 "$name_len")uma-bench%s" "$payload" >> "$f"
    curl -sf -H "Authorization: Bearer ${OWNER_PATS[$owner]}" -H 'Content-Type: application/wasm' \
      --data-binary "@$f" "$AS/owner/modules/m$1" >/dev/null || { echo "upload of module $1 failed" >&2; return 1; }
    rm -f "$f"
  }
  OWNER_PATS=()
  for i in 0 1 2 3; do
    OWNER_PATS+=("$(curl -sf -u "bench-owner-$i:bench-owner-secret-0123456789" -d grant_type=client_credentials \
      -d scope=uma_protection "$AS/token" | jq -r .access_token)")
  done
  start=$(date +%s)
  for n in $(seq 0 2 $((MODULES - 1))); do
    upload "$n" & a=$!
    if (( n + 1 < MODULES )); then upload $((n + 1)); fi
    wait "$a"
  done
  stored=0
  for i in 0 1 2 3; do
    stored=$((stored + $(curl -sf -H "Authorization: Bearer ${OWNER_PATS[$i]}" "$AS/owner/modules" | jq '.owned | length')))
  done
  [[ $stored == "$MODULES" ]] || { echo "$stored modules stored, not $MODULES" >&2; exit 1; }
  echo "stored $MODULES modules in $(( $(date +%s) - start )) s; server RSS $(rss "$server") MB" >&2
fi

# The peer, on the same machine minutes apart from our scenarios: measured once before them and
# once after, because its own rate moves with the minute (2,700-3,750 grants/s within one hour
# on 2026-12-04) more than our optimisations moved ours. The ratios use the faster of the two
# client-credentials runs, so a slow minute of the peer's cannot flatter us. Our server is idle
# meanwhile; the peer runs only while it is measured.
peer_cc=1
if want peer; then
peer_dir="${PEER_DIR:-$root/target/bench-peer}"
mkdir -p "$peer_dir"
cp "$here/peer/package.json" "$here/peer/server.mjs" "$peer_dir/"
( cd "$peer_dir" && npm install --silent --no-audit --no-fund >/dev/null )
measure_peer() { # when [discovery]: starts the peer, measures it, stops it
  local peer
  PEER_PORT=$PEER_PORT node "$peer_dir/server.mjs" >> "$work/peer.log" 2>&1 &
  peer=$!; pids+=("$peer")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" >/dev/null && break; sleep 0.1; done
  curl -sf -u bench-rs:bench-rs-secret-0123456789 -d grant_type=client_credentials -d scope=api \
    "http://127.0.0.1:$PEER_PORT/token" | jq -e '.access_token' >/dev/null
  URL="http://127.0.0.1:$PEER_PORT" TARGET_PID=$peer measure "peer-cc-$1" token_cc.lua CLIENT_ID=bench-rs CLIENT_SECRET=bench-rs-secret-0123456789 SCOPE=api
  if [[ -n ${2:-} ]]; then
    URL="http://127.0.0.1:$PEER_PORT" TARGET_PID=$peer PATH_=/.well-known/openid-configuration measure peer-discovery get.lua
  fi
  kill "$peer"; wait "$peer" 2>/dev/null || true
}
measure_peer before
fi

if want basic; then
PATH_=/.well-known/uma2-configuration measure discovery get.lua
measure pat token_cc.lua CLIENT_ID=bench-rs CLIENT_SECRET=bench-rs-secret-0123456789 SCOPE=uma_protection
measure introspection introspect.lua PAT="$PAT" RPT="$RPT"
fi
if want grant; then
# Tickets for (b) and its paced run: collected for longer than both run, so they do not run out.
DURATION_SAVE=$DURATION; DURATION=$((DURATION * 2 + 2))
measure collect-tickets collect_tickets.lua PAT="$PAT" RESOURCE_ID="$RID" TICKETS_FILE="$work/tickets"
DURATION=$DURATION_SAVE
measure uma-grant uma_grant.lua CLIENT_ID=bench-app CLIENT_SECRET=bench-app-secret-0123456789 TICKETS_FILE="$work/tickets"
# (b) again at half its peak rate (skipping the tickets the first run used, counting the
# requests still in flight when wrk stopped), for the latency target there: the 16 connections
# send on one schedule of evenly spaced requests at half the peak rate (common.lua's `paced`).
# PACED_PERCENT=15 paces it at another share of the peak instead (the scenario is then named
# uma-grant-paced-15pct), to tell latency that comes with load from latency that does not.
peak=$(jq -s 'map(select(.scenario=="uma-grant"))[0] | [.rps, .requests]' "$results")
paced_pct=${PACED_PERCENT:-50}
paced_name=uma-grant-half-peak; [[ $paced_pct == 50 ]] || paced_name=uma-grant-paced-${paced_pct}pct
measure "$paced_name" uma_grant.lua CLIENT_ID=bench-app CLIENT_SECRET=bench-app-secret-0123456789 \
  TICKETS_FILE="$work/tickets" TICKETS_OFFSET="$(jq -n --argjson p "$peak" '$p[1] + 2 * '"$CONNECTIONS")" \
  RATE="$(jq -n --argjson p "$peak" '$p[0] * '"$paced_pct"' / 100')"
fi
want flow && measure full-flow flow.lua PAT="$PAT" RESOURCE_ID="$RID" CLIENT_ID=bench-app CLIENT_SECRET=bench-app-secret-0123456789

# Co-tenant fairness (issue 7): an owner's grants at a fixed rate (CT_CONNECTIONS connections,
# each waiting CT_DELAY_MS between requests), alone and then while another owner's policy spins
# until it has burned its whole budget (the server's max_fuel) on every call, driven by
# CT_ATTACKERS connections each waiting CT_ATTACK_DELAY_MS between requests (~150 requests/s:
# the attack is the CPU its policy burns, not a flood of requests, which rate limiting is for).
# Target: the victim's p99 attacked within 2x of alone.
if want co-tenant; then
CT_CONNECTIONS=${CT_CONNECTIONS:-8}; CT_DELAY_MS=${CT_DELAY_MS:-8}; CT_ATTACKERS=${CT_ATTACKERS:-8}
CT_ATTACK_DELAY_MS=${CT_ATTACK_DELAY_MS:-50}
EVIL=(-u bench-evil:bench-evil-secret-0123456789)
EVIL_PAT=$(curl -sf "${EVIL[@]}" -d grant_type=client_credentials -d scope=uma_protection "$AS/token" | jq -r .access_token)
EVIL_RID=$(curl -sf -H "Authorization: Bearer $EVIL_PAT" -H 'Content-Type: application/json' \
  -d '{"name":"spin","resource_scopes":["view"]}' "$AS/resource_set" | jq -r ._id)
spin="${CARGO_TARGET_DIR:-$root/target}/plugins/wasm32-wasip2/release/fx_loop.wasm"
curl -sf -H "Authorization: Bearer $EVIL_PAT" -H 'Content-Type: application/wasm' --data-binary "@$spin" \
  "$AS/owner/modules/spin?fuel=200000000" >/dev/null # the server's default max_fuel
EVIL_POLICY=$(curl -sf -H "Authorization: Bearer $EVIL_PAT" -H 'Content-Type: application/json' \
  -d '{"name":"spin","module":{"library":"owned","name":"spin","version":1},"config":{}}' \
  "$AS/owner/policies" | jq -r .id)
curl -sf -X PUT -H "Authorization: Bearer $EVIL_PAT" -H 'Content-Type: application/json' \
  -d "{\"bindings\":[{\"policy\":\"$EVIL_POLICY\"}]}" "$AS/owner/resources/bench-evil/$EVIL_RID/policy" >/dev/null
DURATION_SAVE=$DURATION; DURATION=$(( (DURATION + 1) / 2 + 1 ))
measure collect-tickets collect_tickets.lua PAT="$PAT" RESOURCE_ID="$RID" TICKETS_FILE="$work/tickets-alone"
measure collect-tickets collect_tickets.lua PAT="$PAT" RESOURCE_ID="$RID" TICKETS_FILE="$work/tickets-attacked"
measure collect-tickets collect_tickets.lua PAT="$EVIL_PAT" RESOURCE_ID="$EVIL_RID" TICKETS_FILE="$work/tickets-evil"
DURATION=$DURATION_SAVE
victim=(uma_grant.lua CLIENT_ID=bench-app CLIENT_SECRET=bench-app-secret-0123456789 DELAY_MS="$CT_DELAY_MS")
CONNECTIONS=$CT_CONNECTIONS measure co-tenant-alone "${victim[@]}" TICKETS_FILE="$work/tickets-alone"
DURATION=$((DURATION + 2)) CONNECTIONS=$CT_ATTACKERS measure attacker uma_grant.lua EXPECT_STATUS=403 DELAY_MS="$CT_ATTACK_DELAY_MS" \
  CLIENT_ID=bench-app CLIENT_SECRET=bench-app-secret-0123456789 TICKETS_FILE="$work/tickets-evil" &
attacker=$!
sleep 1 # the attacker's connections are all busy before the victim starts
CONNECTIONS=$CT_CONNECTIONS measure co-tenant-attacked "${victim[@]}" TICKETS_FILE="$work/tickets-attacked"
wait "$attacker"
fi

# One RPT covering 500 resources, built up and then re-granted REPS times (smoke: 200, 3 times).
if want rpt; then
source "$here/rpt500.sh"
run_rpt500() { if [[ $SMOKE == 1 ]]; then REPS=3 RESOURCES=200 rpt500; else REPS=${REPS:-1000} rpt500; fi > "$work/rpt500.json"; }
rpt_rss=$(with_peak_rss "$server" run_rpt500)
jq -c --arg rss "$rpt_rss" '. + {rss_mb: ($rss|tonumber), rps: 0, ops_per_s: 0, p999_ms: 0}' "$work/rpt500.json" >> "$results"
fi

if want peer; then
measure_peer after discovery
peer_cc=$(jq -s '[.[] | select(.scenario|startswith("peer-cc-")) | .ops_per_s] | max' "$results")
fi
echo
printf '%-24s %10s %10s %9s %9s %9s %7s %7s %8s\n' scenario req/s ops/s p50_ms p99_ms p999_ms errors rss_mb x_peer_cc
# Our scenarios first, the peer's last (its first run is measured before ours).
jq -rs --argjson peer "$peer_cc" 'sort_by(.scenario|startswith("peer-")) | .[] | [.scenario, .rps, .ops_per_s, .p50_ms, .p99_ms, .p999_ms, .errors, .rss_mb, (.ops_per_s / $peer)] | @tsv' "$results" \
  | awk -F'\t' '{printf "%-24s %10.0f %10.0f %9.2f %9.2f %9.2f %7d %7d %8.2f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
want peer && jq -rs 'map(select(.scenario|startswith("peer-cc-"))) | "peer client credentials: \(map("\(.scenario|ltrimstr("peer-cc-")) \(.ops_per_s|round)/s") | join(", ")); x_peer_cc is against the faster"' "$results"
want co-tenant && jq -rs 'map(select(.scenario|startswith("co-tenant-"))) | "co-tenant p99: alone \(.[0].p99_ms) ms, with the attacker \(.[1].p99_ms) ms (\(.[1].p99_ms / .[0].p99_ms * 100 | round / 100)x; target <= 2x)"' "$results"
jq -r 'select(.scenario|startswith("rpt-")) | "\(.scenario): \(.requests) grants, each deciding every permission again: p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms; first 10 p50 \(.first10_p50_ms) ms, last 10 p50 \(.last10_p50_ms) ms"' "$results"
if [[ $SMOKE == 1 ]]; then
  bad=$(jq -s 'map(.errors) | add' "$results")
  [[ "$bad" == 0 ]] || { echo "smoke run: $bad errors" >&2; exit 1; }
fi
