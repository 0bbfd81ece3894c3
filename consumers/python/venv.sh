#!/usr/bin/env bash
# Prints the Python of the consumer example's virtualenv, creating it (packages from PyPI,
# requirements.txt) when it is missing or lacks a package.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/fitstream/venv-consumers"
if ! "$venv/bin/python" -c "import confluent_kafka.schema_registry.avro, fastavro" 2>/dev/null; then
  echo "consumers: installing the Python example's packages (PyPI) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
