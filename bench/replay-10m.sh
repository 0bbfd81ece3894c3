#!/usr/bin/env bash
# A whole replay of a large history that is not sorted by time (issue 17): a seeded
# generator (the `sort_10m` bench's) writes a UserBehavior-format file of FITSTREAM_BENCH_ROWS
# rows (default 10,000,000; sorted by user, so times are shuffled across the file, about 100
# rows a user), then `fitstream replay --format taobao --sort-memory-mb M` (release build)
# sorts it within M MiB (default 64; sorted runs on disk, merged) and runs the whole embedded
# pipeline over it: profiler, segmenter, planner, outputs to JSON lines, reconciliation.
#
# Prints the replay's own summary, then one line:
#   replay-10m: rows R, seconds S, rows/s X, peak RSS P MiB (sort bound M MiB)
# Peak RSS is the whole process's (/usr/bin/time): the sort's bound plus the pipeline's
# state, which grows with the customers and the open windows, not with the file's length.
# Not part of CI. Needs about 1.5 GB of disk per 10M rows (the file, the runs, the outputs).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
rows="${FITSTREAM_BENCH_ROWS:-10000000}" sort_mb="${FITSTREAM_BENCH_SORT_MB:-64}"
work="$(mktemp -d "${TMPDIR:-/tmp}/replay-10m.XXXXXX")"
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT

echo "== build (release) and write $rows rows" >&2
FITSTREAM_BENCH_ROWS="$rows" FITSTREAM_BENCH_WRITE="$work/UserBehavior.csv" \
  cargo bench -q -j 2 -p fitstream-simulator --bench sort_10m
cargo build --release -q -j 2 -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"

echo "== fitstream replay --format taobao --sort-memory-mb $sort_mb" >&2
TMPDIR="$work" RUST_LOG=warn /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
  "$FITSTREAM" replay --format taobao --sort-memory-mb "$sort_mb" \
  --input "$work/UserBehavior.csv" --out "$work/out"
read -r wall user sys rss_kb <"$work/time"
python3 - "$rows" "$wall" "$user" "$sys" "$rss_kb" "$sort_mb" <<'PY'
import sys
rows, wall, user, sys_, rss, bound = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f"cpu seconds {user + sys_:.1f} (user {user:.1f}, sys {sys_:.1f})")
print(f"replay-10m: rows {rows}, seconds {wall:.1f}, rows/s {rows / wall:.0f}, peak RSS {rss / 1024:.0f} MiB (sort bound {bound} MiB)")
PY
