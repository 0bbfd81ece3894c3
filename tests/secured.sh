#!/usr/bin/env bash
# fitstream on a cluster secured as k8s/ prescribes (issue 14): the secured broker of
# deploy/kafka.sh start --secure (SASL_SSL, SCRAM-SHA-512, TLS from a local CA, the
# StandardAuthorizer, users and ACLs from k8s/base/users.yaml), and against it:
#   - tests/secured-broker.sh: the ACLs allow what users.yaml allows and deny the rest (Kafka's
#     own tools);
#   - the ignored tests of cli/tests/secured.rs: `run all --until-end` with every service as its
#     own principal (kafka.services.<name>), killed (-9) mid-run and restarted, restoring its
#     state; every output read back by its reader's principal (marketing, operations) equals
#     the embedded run; a principal denied a topic or a group, and a wrong password, are told
#     so at once, naming the principal, the operation and the resource.
# Starts the secured broker when it is not running and then stops it at the end. Prints the
# cargo test summary line.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
jobs="${FITSTREAM_TEST_JOBS:-2}"

started=0
if ! bash deploy/kafka.sh status --secure >/dev/null 2>&1; then
  started=1
fi
bash deploy/kafka.sh start --secure >/dev/null
cleanup() {
  if [ "$started" = 1 ]; then bash deploy/kafka.sh stop --secure >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
data="$(bash deploy/kafka.sh status --secure | sed -n 's/^  data: *//p')"

bash tests/secured-broker.sh

log="$(mktemp "${TMPDIR:-/tmp}/secured.XXXXXX.log")"
set +e
FITSTREAM_SECURED_DIR="$data" \
  cargo test -j "$jobs" -p fitstream --test secured -- --ignored --test-threads 1 --nocapture 2>&1 |
  tee "$log"
status="${PIPESTATUS[0]}"
set -e
summary="$(grep -E '^test result:' "$log" | tail -1)"
echo "secured: ${summary:-no test result} (log: $log)"
exit "$status"
