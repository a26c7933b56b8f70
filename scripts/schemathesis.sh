#!/usr/bin/env bash
# Property-based HTTP fuzzing of every endpoint from the server's own OpenAPI description
# (/openapi.json) with Schemathesis, against the debug binary with fixture data, with a fixed
# budget and seed. Fails on any 5xx and on any response that does not conform to the schema
# (status code, content type, body schema).
#
#   scripts/schemathesis.sh                  # the CI budget (MAX_EXAMPLES=50 per operation, ~30 s)
#   MAX_EXAMPLES=200 scripts/schemathesis.sh # longer
#
# Three passes, each with the credentials its operations take, so generated requests reach the
# real handlers rather than stopping at authentication: the Protection and owner APIs with a PAT
# of a resource server for its own resources, the OAuth endpoints with the client's Basic
# credentials, and the admin API with the admin token.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
SEED=${SEED:-20261129}
PORT=${PORT:-18181}
work=$(mktemp -d)
server=
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

venv=${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

( cd "$root" && cargo build --locked -q -p uma-host )
AS="http://127.0.0.1:$PORT"
ADMIN=schemathesis-admin-token-0123456789
cat > "$work/uma-host.toml" <<TOML
issuer = "$AS"
listen = "127.0.0.1:$PORT"
data_dir = "$work/data"
admin_token = "$ADMIN"

[[clients]]
client_id = "st-rs"
client_secret = "st-rs-secret-0123456789"
redirect_uris = ["http://127.0.0.1:9/callback"]

[[clients]]
client_id = "st-app"
client_secret = "st-app-secret-0123456789"

[[users]]
username = "alice"
password = "alice-password"
claims = { email = "alice@example.com" }
TOML
RUST_LOG=warn "$root/target/debug/uma-host" serve --config "$work/uma-host.toml" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do curl -sf "$AS/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$AS/healthz" >/dev/null || { cat "$work/server.log"; exit 1; }

PAT=$(curl -sf -u st-rs:st-rs-secret-0123456789 -d grant_type=client_credentials \
  -d scope=uma_protection "$AS/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# Something to find: a resource with an owner-approval policy bound, so ids in paths can exist.
curl -sf -H "Authorization: Bearer $PAT" -H 'Content-Type: application/json' \
  -d '{"name":"album","resource_scopes":["view","edit"]}' "$AS/resource_set" >/dev/null

# Schemathesis' content-type and schema checks, less the bare RFC 6750 401 (see the hooks file).
export SCHEMATHESIS_HOOKS=schemathesis_hooks
export PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}"
common=(--seed "$SEED" --max-examples "$MAX_EXAMPLES" --generation-deterministic
  --checks not_a_server_error,status_code_conformance,uma_content_type_conformance,uma_response_schema_conformance
  --phases examples,coverage,fuzzing --workers 1 --request-timeout 20 --no-color
  --suppress-health-check all --warnings off ${SCHEMATHESIS_ARGS:-})
status=0
run() { # name, then schemathesis filters and credentials
  local name=$1; shift
  echo "== schemathesis: $name"
  # From the scratch folder: Schemathesis keeps state in ./.schemathesis.
  (cd "$work" && "$venv/bin/schemathesis" run "$AS/openapi.json" "${common[@]}" "$@") || status=1
}
run protection-and-owner --exclude-path-regex '^/(admin|token|introspect|revoke|authorize|register)' \
  -H "Authorization: Bearer $PAT"
run oauth --include-path-regex '^/(token|introspect|revoke|authorize|register)' \
  -a st-app:st-app-secret-0123456789
run admin --include-path-regex '^/admin' -H "Authorization: Bearer $ADMIN"

if grep -q 'panicked' "$work/server.log"; then
  echo "the server panicked:"; grep -A5 panicked "$work/server.log"; status=1
fi
exit $status
