#!/usr/bin/env bash
# Builds the Java consumer example (target/fitstream-consumer.jar) with Maven, unless the jar is
# newer than the pom, the sources and the schemas it packages. Prints the jar's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/fitstream-consumer.jar"
if [ -f "$jar" ] &&
  [ -z "$(find "$here/pom.xml" "$here/src" "$here/../../schemas" -newer "$jar" -type f | head -1)" ]; then
  echo "$jar"
  exit 0
fi
echo "building the Java consumer example with Maven" >&2
mvn -q -B -f "$here/pom.xml" package -DskipTests >&2
echo "$jar"
