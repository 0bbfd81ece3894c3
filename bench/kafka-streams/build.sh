#!/usr/bin/env bash
# Builds the Kafka Streams peer (target/kafka-streams-peer.jar) with Maven, unless the jar is
# newer than the pom, the Java sources and the schemas it packages. Prints the jar's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/kafka-streams-peer.jar"
if [ -f "$jar" ] &&
  [ -z "$(find "$here/pom.xml" "$here/src" "$here/../../schemas" -newer "$jar" -type f | head -1)" ]; then
  echo "$jar"
  exit 0
fi
echo "building the Kafka Streams peer with Maven" >&2
mvn -q -B -f "$here/pom.xml" package -DskipTests >&2
echo "$jar"
