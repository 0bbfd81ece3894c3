#!/usr/bin/env bash
# Where a replay's memory goes: heaptrack (Debian's `heaptrack`, installed when missing) over
# `fitstream replay --format taobao` of the `sort_10m` generator's file (FITSTREAM_BENCH_ROWS
# rows, default 1,000,000; sorted within FITSTREAM_BENCH_SORT_MB MiB, default 64, as
# bench/replay-10m.sh does), then the heap at its peak, by the deepest frames of fitstream's
# own code that allocated it. Prints the replay's summary, then:
#   replay-heap: rows R, peak heap H MB
#   <MB>  <frames, innermost first>      (the ten largest)
# Not part of CI. Runs about three times slower than the replay alone.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
rows="${FITSTREAM_BENCH_ROWS:-1000000}" sort_mb="${FITSTREAM_BENCH_SORT_MB:-64}"
if ! command -v heaptrack >/dev/null; then
  echo "installing heaptrack (Debian package)" >&2
  apt-get update -qq && apt-get install -y -qq heaptrack
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/replay-heap.XXXXXX")"
trap 'rm -rf "$work"' EXIT

FITSTREAM_BENCH_ROWS="$rows" FITSTREAM_BENCH_WRITE="$work/UserBehavior.csv" \
  cargo bench -q -j 2 -p fitstream-simulator --bench sort_10m >&2
# glibc's malloc, which heaptrack sees (the usual build allocates with mimalloc), built in a
# target directory of its own so that the usual release binary stays as it is.
heap_target="${CARGO_TARGET_DIR:-$REPO/target}/heap"
cargo build --release -q -j 2 -p fitstream --bin fitstream --features system-allocator \
  --target-dir "$heap_target"
FITSTREAM="$heap_target/release/fitstream"

TMPDIR="$work" RUST_LOG=warn heaptrack -o "$work/heap" "$FITSTREAM" replay --format taobao \
  --sort-memory-mb "$sort_mb" --input "$work/UserBehavior.csv" --out "$work/out" >"$work/replay.log" 2>&1 || {
  cat "$work/replay.log"
  exit 1
}
grep -v '^heaptrack\|^$' "$work/replay.log" | sed -n '/outcome of every input row/,$p'
heaptrack_print -f "$work"/heap.*zst --print-peaks 0 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -s 0 -F "$work/peak.txt" \
  --flamegraph-cost-type peak >/dev/null
python3 bench/heap-peaks.py "$work/peak.txt" "replay-heap: rows $rows"
