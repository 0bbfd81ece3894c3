#!/usr/bin/env bash
# The test schema registry (deploy/registry.sh, Apicurio Registry 2.4.2 with its Confluent
# API) checked with curl, on both instances: the plain one (HTTP, no authentication) and the
# secure one (HTTPS with a certificate from the CA made by deploy/registry.sh, HTTP basic
# authentication with the generated user). On each: an Avro schema is registered under
# fitstream-registry-test-value (REGISTRY_TEST_SUBJECT), read back by id, registered again (same id), the subject's
# compatibility level is set and read, a compatible and an incompatible schema are checked,
# the incompatible one is refused (409) and the compatible one registered as version 2.
# On the secure one also: no credentials and a wrong password get 401, a client that does not
# trust the CA fails the TLS handshake, plain HTTP to the HTTPS port gets no answer.
#
# Starts an instance that is not running (and stops it at the end, also on failure); uses one
# that runs. Ends with `registry: N checks passed` (exit 0), or a count of failed checks
# (exit 1). Needs curl and python3 (JSON checks).
# The conditions of `check` are strings run by eval, which expand the variables then.
# shellcheck disable=SC2016,SC2034
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
REG=(bash deploy/registry.sh)
bash deploy/ensure-package.sh curl
SUBJECT="${REGISTRY_TEST_SUBJECT:-fitstream-registry-test-value}"

work="$(mktemp -d "${TMPDIR:-/tmp}/registry-test.XXXXXX")"
started=()
cleanup() {
  local m
  for m in ${started[@]+"${started[@]}"}; do
    if [ "$m" = secure ]; then "${REG[@]}" stop --secure || true; else "${REG[@]}" stop || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok() {
  passed=$((passed + 1))
  echo "ok   $MODE: $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $MODE: $*"
}
# check DESCRIPTION CONDITION...: runs the condition (a command), counts and prints.
check() {
  local what="$1"
  shift
  if "$@"; then ok "$what"; else fail "$what (status $STATUS, body: $(head -c 400 "$work/body"))"; fi
}

# req METHOD PATH [JSON]: a request to the Confluent API of the instance; sets STATUS (the
# HTTP status, 000 when there was no answer) and CURL_RC, and leaves the body in $work/body.
req() {
  local method="$1" path="$2" data="${3:-}"
  local -a args=(-sS --max-time 20 -o "$work/body" -w '%{http_code}' -X "$method"
    ${AUTH[@]+"${AUTH[@]}"} ${TLS[@]+"${TLS[@]}"})
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/vnd.schemaregistry.v1+json' --data "$data")
  fi
  set +e
  STATUS="$(curl "${args[@]}" "$URL$path" 2>"$work/curl.err")"
  CURL_RC=$?
  set -e
  [ -n "$STATUS" ] || STATUS=000
  [ -f "$work/body" ] || : >"$work/body"
}

# jq_py EXPR: evaluates a Python expression over the last body parsed as JSON (`d`).
jq_py() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2])
print(json.dumps(r) if not isinstance(r, str) else r)' "$work/body" "$1" 2>/dev/null
}
is() { [ "$(jq_py "$1")" = "$2" ]; }
status_is() { [ "$STATUS" = "$1" ]; }

# schema_body SCHEMA: {"schema": SCHEMA} as JSON.
schema_body() { python3 -c 'import json, sys; print(json.dumps({"schema": sys.argv[1]}))' "$1"; }

# Avro schemas of one record: v1; v2 adds a field with a default (BACKWARD compatible); bad
# changes a field's type (not compatible). A unique namespace per run gives new schema ids even
# on a registry that already has the subject; v1_spaced is v1 written with other whitespace.
ns="fitstream.test.r$(date +%s)$$"
# Fields not in alphabetical order: Avro's binary encoding follows the field order, so a
# registry must give a schema back with its fields as registered.
v1="{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"$ns\",\"fields\":[{\"name\":\"ts\",\"type\":\"long\"},{\"name\":\"event_id\",\"type\":\"string\"}]}"
v1_spaced="{ \"type\": \"record\", \"name\": \"Click\", \"namespace\": \"$ns\", \"fields\": [ {\"name\": \"ts\", \"type\": \"long\"}, {\"name\": \"event_id\", \"type\": \"string\"} ] }"
v2="{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"$ns\",\"fields\":[{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},{\"name\":\"page\",\"type\":\"string\",\"default\":\"\"}]}"
bad="{\"type\":\"record\",\"name\":\"Click\",\"namespace\":\"$ns\",\"fields\":[{\"name\":\"event_id\",\"type\":\"int\"},{\"name\":\"ts\",\"type\":\"long\"}]}"

# The checks of the Confluent API, the same on both instances.
api_checks() {
  # A fresh subject: a subject left by an earlier run is deleted (soft, then for good).
  req DELETE "/subjects/$SUBJECT"
  req DELETE "/subjects/$SUBJECT?permanent=true"

  req POST "/subjects/$SUBJECT/versions" "$(schema_body "$v1")"
  check "register v1 under $SUBJECT: 200 {\"id\": N}" eval 'status_is 200 && [ "$(jq_py "sorted(d)")" = "[\"id\"]" ] && [ "$(jq_py "d[\"id\"]")" -gt 0 ]'
  local id1
  id1="$(jq_py 'd["id"]' || echo none)"

  req GET "/schemas/ids/$id1"
  # (Equal as JSON: fields in their order. Apicurio's canonical-hash mode gives them back
  # sorted by name, which misreads every datum: deploy/registry.sh keeps it off.)
  printf '%s' "$v1" >"$work/v1.json"
  check "GET /schemas/ids/$id1 gives v1 back (equal as JSON)" eval \
    'status_is 200 && is "json.loads(d[\"schema\"]) == json.load(open(\"$work/v1.json\"))" true'

  req POST "/subjects/$SUBJECT/versions" "$(schema_body "$v1")"
  check "register v1 again: the same id $id1" eval 'status_is 200 && is "d[\"id\"]" "$id1"'

  if [ "${REGISTRY_CANONICAL_HASH:-false}" = true ]; then
    req POST "/subjects/$SUBJECT/versions" "$(schema_body "$v1_spaced")"
    check "register v1 written with other whitespace: the same id $id1" eval 'status_is 200 && is "d[\"id\"]" "$id1"'
  fi

  req GET "/subjects/$SUBJECT/versions"
  check "one version: [1]" eval 'status_is 200 && is "d" "[1]"'

  req PUT "/config/$SUBJECT" '{"compatibility":"BACKWARD"}'
  check "PUT /config/$SUBJECT BACKWARD: 200 {\"compatibility\": \"BACKWARD\"}" eval 'status_is 200 && is "d[\"compatibility\"]" BACKWARD'

  req GET "/config/$SUBJECT"
  check "GET /config/$SUBJECT: {\"compatibilityLevel\": \"BACKWARD\"}" eval 'status_is 200 && is "d[\"compatibilityLevel\"]" BACKWARD'

  req POST "/compatibility/subjects/$SUBJECT/versions/latest" "$(schema_body "$v2")"
  check "compatibility of v2 (a field with a default added): is_compatible true" eval 'status_is 200 && is "d[\"is_compatible\"]" true'

  req POST "/compatibility/subjects/$SUBJECT/versions/latest" "$(schema_body "$bad")"
  check "compatibility of a changed field type: is_compatible false" eval 'status_is 200 && is "d[\"is_compatible\"]" false'

  req POST "/subjects/$SUBJECT/versions" "$(schema_body "$bad")"
  check "register the incompatible schema: 409 with error_code and message" eval \
    'status_is 409 && [ "$(jq_py "\"error_code\" in d and \"Incompatible\" in d[\"message\"]")" = true ]'
  echo "     409 body: $(head -c 300 "$work/body")"

  req POST "/subjects/$SUBJECT/versions" "$(schema_body "$v2")"
  check "register v2: a new id" eval 'status_is 200 && [ "$(jq_py "d[\"id\"]")" != "$id1" ]'
  local id2
  id2="$(jq_py 'd["id"]' || echo none)"

  req GET "/subjects/$SUBJECT/versions/latest"
  check "latest version: 2, id $id2" eval 'status_is 200 && is "d[\"version\"]" 2 && is "d[\"id\"]" "$id2" && is "d[\"subject\"]" "$SUBJECT"'
}

# ---------------------------------------------------------------- plain
MODE=plain
if ! "${REG[@]}" status >/dev/null 2>&1; then
  "${REG[@]}" start
  started+=(plain)
fi
URL="$("${REG[@]}" url)"
AUTH=() TLS=()
case "$URL" in http://127.0.0.1:*) ok "url is $URL" ;; *) fail "url is $URL" ;; esac
api_checks

# ---------------------------------------------------------------- secure
MODE=secure
if ! "${REG[@]}" status --secure >/dev/null 2>&1; then
  "${REG[@]}" start --secure
  started+=(secure)
fi
client_env="$(mktemp "$work/client.XXXXXX")"
"${REG[@]}" env --secure >"$client_env"
get() { sed -n "s/^$1=//p" "$client_env"; }
URL="$(get FITSTREAM_REGISTRY_URL)"
user="$(get FITSTREAM_REGISTRY_USER)" password="$(get FITSTREAM_REGISTRY_PASSWORD)" ca="$(get FITSTREAM_REGISTRY_CA)"
case "$URL" in https://127.0.0.1:*) ok "url is $URL, user $user, CA $ca" ;; *) fail "url is $URL" ;; esac

TLS=(--cacert "$ca")
AUTH=()
req GET /subjects
check "no credentials: 401" status_is 401
AUTH=(-u "$user:wrong-$password")
req GET /subjects
check "a wrong password: 401" status_is 401
echo "     401 body: '$(head -c 300 "$work/body")'"
AUTH=(-u "nobody:$password")
req GET /subjects
check "an unknown user: 401" status_is 401

AUTH=(-u "$user:$password")
TLS=()
req GET /subjects
check "a client without the CA fails the TLS handshake (curl exit 60)" eval '[ "$CURL_RC" = 60 ] && status_is 000'
TLS=(--cacert "$ca")
req GET /subjects
check "with the CA and the credentials: 200" status_is 200
port="${URL#https://127.0.0.1:}" port="${port%%/*}"
saved_url="$URL"
URL="https://localhost:$port/apis/ccompat/v7"
req GET /subjects
check "the certificate is valid for localhost too" status_is 200
URL="http://127.0.0.1:$port/apis/ccompat/v7"
req GET /subjects
check "plain HTTP to the HTTPS port gets no HTTP answer" eval '[ "$CURL_RC" != 0 ] && status_is 000'
URL="$saved_url"
api_checks

MODE=all
if [ "$failed" = 0 ]; then
  echo "registry: $passed checks passed"
else
  echo "registry: $passed checks passed, $failed failed"
  exit 1
fi

# ---------------------------------------------------------------- fitstream against it
# The ignored tests of cli/tests/registry.rs, on both instances and the test broker
# (FITSTREAM_TEST_BOOTSTRAP): `schemas register|check`, produce + run all + tail through the
# registry equal to replay, a record of another producer's newer schema read by fetching its
# id, TLS and basic authentication. Prints the cargo test summary line.
log="$work/cargo.log"
python="$(bash consumers/python/venv.sh)"
set +e
FITSTREAM_TEST_REGISTRY="$(bash deploy/registry.sh url)" FITSTREAM_TEST_REGISTRY_SECURE="$client_env" \
  FITSTREAM_TEST_PYTHON="$python" \
  cargo test -j "${FITSTREAM_TEST_JOBS:-2}" -p fitstream --test registry -- --ignored \
  --test-threads 1 --nocapture 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
echo "registry (fitstream): $(grep -E '^test result:' "$log" | tail -1)"
exit "$status"
