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
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  bash "$here/ensure-package.sh" fonts-dejavu-core test -d /usr/share/fonts/truetype/dejavu
  bash "$here/ensure-package.sh" chromium
fi
find_chromium
