#!/usr/bin/env bash
# Installs the HTTP load generator oha (crates.io, a pinned version; TLS through the system's
# OpenSSL, as rdkafka builds it, rather than rustls' C toolchain) under
# ~/.cache/fitstream/tools/oha once, and prints the path of its binary.
set -euo pipefail
version="${OHA_VERSION:-1.16.0}"
root="${FITSTREAM_TOOLS:-$HOME/.cache/fitstream/tools}/oha-$version"
bin="$root/bin/oha"
if [ ! -x "$bin" ]; then
  echo "oha: installing $version from crates.io into $root ..." >&2
  # Its own target dir: the workspace's stays lean.
  CARGO_TARGET_DIR="$root/build" cargo install --quiet --locked -j 2 \
    --root "$root" --version "$version" --no-default-features --features native-tls oha >&2
  rm -rf "$root/build"
fi
echo "$bin"
