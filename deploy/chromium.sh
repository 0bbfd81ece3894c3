#!/usr/bin/env bash
# deploy/chromium.sh - prints the path of a headless Chromium for the console's browser test,
# installing Debian's `chromium` package (apt-get) when none is there. Set CHROMIUM to use
# another binary.
set -euo pipefail

find_chromium() {
  if [ -n "${CHROMIUM:-}" ]; then
    command -v "$CHROMIUM" && return 0
  fi
  for c in chromium chromium-browser google-chrome; do
    command -v "$c" && return 0
  done
  return 1
}

if ! find_chromium >/dev/null; then
  echo "installing chromium (Debian package) for the console's browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
find_chromium
