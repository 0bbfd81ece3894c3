#!/usr/bin/env bash
# deploy/ensure-package.sh PACKAGE [CHECK ...]: installs the Debian package PACKAGE (apt-get)
# unless CHECK succeeds (default: a command named PACKAGE exists). The scripts that need a
# system tool call this, so a fresh machine gets what the tests use:
#   bash deploy/ensure-package.sh openssl
#   bash deploy/ensure-package.sh python3-yaml python3 -c 'import yaml'
set -euo pipefail
package="$1"
shift
if [ "$#" -eq 0 ]; then
  set -- command -v "$package"
fi
if "$@" >/dev/null 2>&1; then
  exit 0
fi
echo "installing $package (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "$package" >&2
"$@" >/dev/null 2>&1 || { echo "$package installed, but '$*' still fails" >&2; exit 1; }
