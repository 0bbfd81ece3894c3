#!/usr/bin/env bash
# Offline validation of the deployment files: renders every overlay under k8s/overlays with
# `kubectl kustomize`, checks core kinds against the Kubernetes schemas (kubernetes-validate,
# strict), Strimzi/KEDA/Prometheus Operator resources against the CRD schemas in crds/, the
# custom rules of check.py (probes, security, KEDA, credentials, topic configs), and the Grafana
# dashboards' metric names against deploy/grafana/metrics.txt, and deploy/compose.yaml against
# the Compose specification schema; k8s/base/config/plants.toml must equal deploy/plants.toml.
# Prints one line per check and `validate: N passed, M failed`; exits non-zero on a failure.
#   K8S_VERSION   Kubernetes version to check against (default 1.32.0)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

args=()
for overlay in k8s/overlays/*/; do
  args+=(--overlay "$(basename "$overlay")=${overlay%/}")
done
for dashboard in deploy/grafana/*.json; do
  [ -e "$dashboard" ] && args+=(--dashboard "$dashboard")
done

exec "$VALIDATE_PY" deploy/validate/check.py --k8s-version "${K8S_VERSION:-1.32.0}" \
  --crds deploy/validate/crds --metrics deploy/grafana/metrics.txt "${args[@]}" \
  --compose deploy/compose.yaml --compose-schema deploy/validate/schemas/compose-spec.json \
  --copy k8s/base/config/plants.toml=deploy/plants.toml
