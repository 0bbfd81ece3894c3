#!/usr/bin/env bash
# The secured test broker (deploy/kafka.sh --secure: SASL_SSL, SCRAM-SHA-512, ACLs from
# k8s/base/users.yaml) allows what users.yaml allows and denies the rest. With the Kafka
# command line tools and the generated Java client settings (<data>/clients/<user>.java.properties):
#   - the broker certificate verifies against the local CA (openssl s_client), and the
#     controller listener refuses a client without a certificate;
#   - the admin creates iob.clickstream.v1 and marketing.segment-assignments.v1;
#   - fitstream-profiler produces to marketing.segment-assignments.v1;
#   - fitstream-marketing-reader reads it back in group fitstream-reader-x;
#   - fitstream-marketing-reader may not produce to it (idempotent or not), nor use the group
#     other-group; fitstream-profiler may not read it; a wrong password fails to authenticate.
# Starts the secured broker when it is not running (and then stops it at the end).
# Prints one line per check and `secured-broker: N passed, M failed`; exits 1 on a failure.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
KAFKA=(bash deploy/kafka.sh)

started=0
work="$(mktemp -d "${TMPDIR:-/tmp}/secured-broker.XXXXXX")"
cleanup() {
    if [ "$started" = 1 ]; then "${KAFKA[@]}" stop --secure >/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! "${KAFKA[@]}" status --secure >/dev/null 2>&1; then
    started=1
    "${KAFKA[@]}" start --secure
else
    "${KAFKA[@]}" start --secure >/dev/null # users and ACLs synced if users.yaml changed
fi
status="$("${KAFKA[@]}" status --secure)"
field() { sed -n "s/^  $1: *//p" <<<"$status"; }
bootstrap="$(field bootstrap)"
ca="$(field ca)"
clients="$(field data)/clients"
if [ -z "$bootstrap" ] || [ ! -s "$ca" ] || [ ! -d "$clients" ]; then
    echo "secured-broker: cannot read the broker's status:" >&2
    echo "$status" >&2
    exit 1
fi
host="${bootstrap%:*}"
controller="$host:${KAFKA_SECURE_CONTROLLER_PORT:-9393}"
topic=marketing.segment-assignments.v1

passed=0
failed=0
ok() {
    echo "ok   $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1"
    sed 's/^/     | /' "$work/out" | grep -v '^     | \s*at ' | tail -n 15
    failed=$((failed + 1))
}
# expect NAME ok|PATTERN CMD...: the command succeeds (ok), or its output matches the
# extended regular expression PATTERN (a denial: the tools do not always exit non-zero).
expect() {
    local name="$1" want="$2" rc=0
    shift 2
    "$@" >"$work/out" 2>&1 </dev/null || rc=$?
    if [ "$want" = ok ]; then
        if [ "$rc" = 0 ]; then ok "$name"; else fail "$name (exit $rc)"; fi
    elif grep -qE -- "$want" "$work/out"; then
        ok "$name: $(grep -oE -m1 -- "$want" "$work/out")"
    else
        fail "$name (exit $rc; no /$want/ in the output)"
    fi
}
tool() { timeout 120 "${KAFKA[@]}" tool "$@"; }
tls() { # ADDRESS [ARGS]: a TLS handshake, reading for 2 s (a TLS 1.3 server refuses a client
    # certificate after its handshake is done)
    local addr="$1"
    shift
    sleep 2 | timeout 30 openssl s_client -connect "$addr" -CAfile "$ca" "$@"
}
as() { echo "$clients/$1.java.properties"; }
produce() { # USER [PROPERTY=VALUE...]: one record from stdin ($work/in), acknowledged
    local user="$1" a=()
    shift
    for p in "$@"; do a+=(--command-property "$p"); done
    tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$bootstrap" \
        --command-config "$(as "$user")" --topic "$topic" --sync ${a[@]+"${a[@]}"} <"$work/in"
}
consume() { # USER GROUP: everything after the group's offsets, until 5 s without records
    tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$bootstrap" \
        --command-config "$(as "$1")" --topic "$topic" --group "$2" --from-beginning \
        --timeout-ms 5000
}

# TLS: the certificate chain, and the controller listener (client certificates only).
expect "TLS certificate of $bootstrap verifies against $ca" 'Verify return code: 0 \(ok\)' \
    tls "$bootstrap" -verify_ip "$host" -verify_return_error
expect "controller listener $controller refuses a client without a certificate" \
    'alert (bad certificate|certificate required|handshake failure)' tls "$controller"

# Allowed.
for t in iob.clickstream.v1 "$topic"; do
    expect "admin creates $t" ok timeout 120 "${KAFKA[@]}" topics --secure --create --if-not-exists \
        --topic "$t" --partitions 1 --replication-factor 1
done
marker="secured-broker-$(date +%s)-$$"
echo "$marker" >"$work/in"
expect "fitstream-profiler produces to $topic" ok produce fitstream-profiler
expect "fitstream-marketing-reader consumes $topic in group fitstream-reader-x" "$marker" \
    consume fitstream-marketing-reader fitstream-reader-x

# Denied.
echo denied >"$work/in"
expect "fitstream-marketing-reader may not produce to $topic (idempotent producer)" \
    'ClusterAuthorizationException: [^"]*' produce fitstream-marketing-reader
expect "fitstream-marketing-reader may not produce to $topic" \
    'TopicAuthorizationException: Not authorized to access topics: \[[^]]*\]' \
    produce fitstream-marketing-reader enable.idempotence=false
expect "fitstream-marketing-reader may not use group other-group" \
    'GroupAuthorizationException: Not authorized to access group: [^ ]*' \
    consume fitstream-marketing-reader other-group
expect "fitstream-profiler may not read $topic (it only writes it)" \
    'TopicAuthorizationException: Not authorized to access topics: \[[^]]*\]' \
    consume fitstream-profiler fitstream-profiler-secured-broker-test
sed 's/password="[^"]*"/password="not-the-password"/' "$(as fitstream-profiler)" >"$work/bad.properties"
expect "a wrong password does not authenticate" \
    'SaslAuthenticationException: Authentication failed[^(]*SCRAM-SHA-512' \
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --command-config "$work/bad.properties" --list

echo "secured-broker: $passed passed, $failed failed"
[ "$failed" = 0 ]
