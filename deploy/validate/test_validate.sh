#!/usr/bin/env bash
# Negative tests of the manifest checks: feeds check.py broken copies of the rendered overlays
# and of the dashboard (misspelled fields, wrong kinds and apiVersions, missing probes, bad
# Strimzi/KEDA/ServiceMonitor fields, unknown metrics, ...) and asserts each one is caught.
# Prints one line per case and `validate-negative: N passed, M failed`; exits non-zero on a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for env in dev prod; do
  if ! kubectl kustomize "k8s/overlays/$env" >"$work/$env.yaml"; then
    echo "FAIL render k8s/overlays/$env"
    echo "validate-negative: 0 passed, 1 failed"
    exit 1
  fi
done

exec "$VALIDATE_PY" deploy/validate/test_validate.py \
  --rendered "dev=$work/dev.yaml" --rendered "prod=$work/prod.yaml" \
  --dashboard deploy/grafana/fitstream-dashboard.json --metrics deploy/grafana/metrics.txt \
  --compose deploy/compose.yaml --compose-schema deploy/validate/schemas/compose-spec.json \
  --routing-original deploy/plants.toml \
  --crds deploy/validate/crds --k8s-version "${K8S_VERSION:-1.32.0}"
