#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: starts a real Kafka broker (installed
# from Maven Central by deploy/kafka.sh on first use), checks formatting and lints, runs every
# Rust test (unit, property, embedded and against the broker), the broker and process fault
# scenarios (tests/faults.sh, on a second broker it starts and stops), the secured-cluster tests
# (tests/secured.sh, on a SASL_SSL broker with ACLs it starts and stops), the schema-registry
# tests (tests/registry.sh, on a registry it installs and starts), the differential test against
# the Kafka Streams peer (bench/kafka-streams, built with Maven), the consumer examples
# (consumers/, Python from PyPI and Java with Maven) against the broker, validates the Kubernetes
# manifests offline, and stops the broker it started, even when something fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Two cores: two compile jobs, two test threads.
jobs="${FITSTREAM_TEST_JOBS:-2}"

# librdkafka is built with TLS (SASL_SSL clusters): it needs OpenSSL's headers.
if ! pkg-config --exists openssl 2>/dev/null; then
  echo "installing libssl-dev and pkg-config (Debian packages) for librdkafka's TLS"
  apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config
fi

started_broker=0
if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
  # The tests make topics of their own, named per run, and need nothing an earlier run left:
  # the broker they start starts empty (one whose data dir holds every earlier run's topics
  # takes minutes to load them). A broker you started yourself is used as it is.
  bash deploy/kafka.sh reset
  bash deploy/kafka.sh start
  started_broker=1
fi
cleanup() {
  if [ "$started_broker" = 1 ]; then bash deploy/kafka.sh stop || true; fi
}
trap cleanup EXIT
export FITSTREAM_TEST_BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"

# Each step prints the time the one before it took, and the total at the end, so a slow step
# shows in CI's log (the whole run should stay under 50 minutes).
run_started=$SECONDS
step_started=$SECONDS
step_name=""
step_done() {
  if [ -n "$step_name" ]; then
    printf '== took %d s: %s\n' "$((SECONDS - step_started))" "$step_name"
  fi
}
step() {
  step_done
  step_name="$*"
  step_started=$SECONDS
  printf '\n== %s\n' "$*"
}

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets -j "$jobs" -- -D warnings

# The schema compatibility test checks every schema against its history in git, and fails on
# a shallow clone (the default of many CI checkouts), which has none: fetch the rest first.
if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
  step "git fetch --unshallow (the history of schemas/ for the compatibility test)"
  git fetch --unshallow --quiet ||
    echo "could not fetch the full history: the schema compatibility test will fail"
fi

step "cargo test (broker at $FITSTREAM_TEST_BOOTSTRAP)"
# Every test binary runs even after one failed, so that one run shows every failure.
cargo test --workspace --no-fail-fast -j "$jobs" -- --test-threads "$jobs"

step "broker and process faults, on a broker of their own (tests/faults.sh)"
bash tests/faults.sh

step "a secured cluster: SASL_SSL, ACLs from k8s/base/users.yaml, every service its own principal (tests/secured.sh)"
bash tests/secured.sh

step "a real schema registry (deploy/registry.sh: Apicurio from Maven Central) and fitstream against it (tests/registry.sh)"
bash tests/registry.sh

step "differential test: the planner against its Kafka Streams peer (Maven builds the peer)"
bash tests/kafka-streams-diff.sh

step "consumer kit: the Python and Java examples read every output topic as fitstream tail does"
bash tests/consumers.sh

step "Kubernetes manifests, CRDs and dashboard (offline)"
bash deploy/validate/validate.sh
bash deploy/validate/test_validate.sh
step_done
printf '== the whole run took %d s\n' "$((SECONDS - run_started))"
