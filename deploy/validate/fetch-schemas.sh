#!/usr/bin/env bash
# Regenerates the schemas the offline checks use, from package registries only:
# crds/*.yaml (CustomResourceDefinitions) and schemas/compose-spec.json.
# Not run by CI: the files are committed; run this by hand to move to newer versions, then run
# deploy/validate/validate.sh and deploy/validate/test_validate.sh and commit the diff.
#
#   KEDA                 Go module github.com/kedacore/keda/v2 (config/crd/bases/)
#   Prometheus Operator  Go module github.com/prometheus-operator/prometheus-operator
#                        (example/prometheus-operator-crd/)
#   Compose spec         Go module github.com/compose-spec/compose-go/v2 (schema/compose-spec.json)
#   Strimzi              Maven Central io.strimzi:api + io.strimzi:crd-generator: the api jar
#                        carries no CRD YAML, so this runs Strimzi's own CrdGenerator over the
#                        api classes with the arguments of the api module's pom
#                        (execution generate-crd-co-install-v1). Needs Java 21+.
#
# Requires: go, mvn, java (21+; set JAVA to pick one), run from anywhere.
set -euo pipefail

KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
STRIMZI_VERSION="${STRIMZI_VERSION:-1.2.0}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-v2.16.2}"
JAVA="${JAVA:-java}"

validate="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
here="$validate/crds"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

moddir() { # module@version -> extracted module dir
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1") |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])'
}

keda="$(moddir "github.com/kedacore/keda/v2@${KEDA_VERSION}")"
install -m 0644 "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$here/"
install -m 0644 "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" "$here/"

po="$(moddir "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}")"
install -m 0644 "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$here/"
install -m 0644 "$po/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" "$here/"
install -m 0644 "$po/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" "$here/"

compose="$(moddir "github.com/compose-spec/compose-go/v2@${COMPOSE_GO_VERSION}")"
mkdir -p "$validate/schemas"
install -m 0644 "$compose/schema/compose-spec.json" "$validate/schemas/"

cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.fitstream</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>${STRIMZI_VERSION}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>${STRIMZI_VERSION}</version></dependency>
  </dependencies>
</project>
EOF
mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies -DoutputDirectory="$work/libs" -DincludeScope=runtime
"$JAVA" -cp "$work/libs/*" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true \
  --target-kube 1.16+ --crd-api-version v1 --api-versions v1 --storage-version v1 \
  --yaml \
  "io.strimzi.api.kafka.model.topic.KafkaTopic=$here/kafka.strimzi.io_kafkatopics.yaml" \
  "io.strimzi.api.kafka.model.user.KafkaUser=$here/kafka.strimzi.io_kafkausers.yaml"

echo "fetch-schemas: KEDA ${KEDA_VERSION}, Prometheus Operator ${PROMETHEUS_OPERATOR_VERSION}," \
  "Strimzi ${STRIMZI_VERSION}, compose-go ${COMPOSE_GO_VERSION} written to ${validate}"
