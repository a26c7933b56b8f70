#!/usr/bin/env bash
# One RPT covering 500 resources (issue 6's target: <= 20 ms, the same after 1,000 repetitions).
# Sourced by run.sh after its setup (needs AS, PAT, POLICY, REPS; RESOURCES, a multiple of 100,
# defaults to 500 and is smaller in the smoke run); prints one JSON line.
#
# A ticket holds at most 100 permissions, so the RPT is built the way a client grows one:
# four grants of 100 resources each, upgrading the RPT every time, then the measured grant:
# 100 new resources plus the 400 of the presented RPT, every one decided again by its policy
# (nothing is copied from an old RPT, S20), giving an RPT with 500 permissions. Each repetition
# upgrades the previous repetition's RPT (an upgraded RPT is revoked, RPT-5), so every measured
# grant decides all 500 permissions again.
rpt500() {
  local app=(-u bench-app:bench-app-secret-0123456789)
  local ids=() i n_res=${RESOURCES:-500}
  local last=$((n_res / 100 - 1))
  for i in $(seq "$n_res"); do
    ids+=("$(curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
      -d "{\"name\":\"r$i\",\"resource_scopes\":[\"view\"]}" "$AS/resource_set" | jq -r ._id)")
    curl -sf -X PUT -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
      -d "{\"bindings\":[{\"policy\":\"$POLICY\"}]}" "$AS/owner/resources/bench-rs/${ids[-1]}/policy" >/dev/null
  done
  ticket_for() { # batch number 0..4
    local perms
    perms=$(printf '%s\n' "${ids[@]:$(($1 * 100)):100}" | jq -R '{resource_id: ., resource_scopes: ["view"]}' | jq -s -c .)
    curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' -d "$perms" "$AS/permission" | jq -r .ticket
  }
  grant() { # ticket [rpt] -> prints "seconds rpt"
    local extra=()
    [[ -n "${2:-}" ]] && extra=(-d "rpt=$2")
    curl -sf "${app[@]}" -o "$work/grant.json" -w '%{time_total}' \
      -d grant_type=urn:ietf:params:oauth:grant-type:uma-ticket -d "ticket=$1" "${extra[@]}" "$AS/token"
    echo " $(jq -r .access_token "$work/grant.json")"
  }
  local rpt="" out b
  for b in $(seq 0 $((last - 1))); do out=$(grant "$(ticket_for "$b")" "$rpt"); rpt=${out#* }; done
  local times=()
  for i in $(seq "$REPS"); do
    out=$(grant "$(ticket_for "$last")" "$rpt")
    times+=("${out%% *}")
    rpt=${out#* }
  done
  # The last RPT really carries a permission for every resource.
  local n
  n=$(curl -sf -H "Authorization: Bearer $PAT" -d "token=$rpt" "$AS/introspect" | jq '.permissions | length')
  [[ $n == "$n_res" ]] || { echo "the RPT carries $n permissions, not $n_res" >&2; return 1; }
  printf '%s\n' "${times[@]}" | jq -s -c --argjson reps "$REPS" --argjson n "$n_res" '
    def ms: . * 1000 | . * 100 | round / 100;
    def p(q): sort | .[((length - 1) * q | floor)];
    {scenario: "rpt-\($n)-resources", requests: $reps,
     first10_p50_ms: (.[0:10] | p(0.5) | ms), last10_p50_ms: (.[-10:] | p(0.5) | ms),
     p50_ms: (p(0.5) | ms), p99_ms: (p(0.99) | ms), max_ms: (max | ms), errors: 0}'
}
