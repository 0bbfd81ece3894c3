#!/usr/bin/env bash
# Where the embedded replay's time goes (issue 16, the replay-vs-parse goal): perf samples
# `fitstream replay --format jsonl` (release build) of the simulator's three default days
# with DWARF call graphs, then prints the share of all samples spent in (under) each part of
# the pipeline, and the allocator's own share. Needs perf (Debian: apt-get install
# linux-perf). Not part of CI.
#
# Prints lines `replay-profile: <part> <percent>`; parts overlap where one calls another
# (decoding happens under delivery; the allocator under everything).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
command -v perf >/dev/null || { echo "replay-profile: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/replay-profile.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cargo build --release -q -j 2 -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"
RUST_LOG=warn "$FITSTREAM" simulate --out "$work/days.jsonl" >/dev/null
RUST_LOG=warn perf record -q -F 150 --call-graph dwarf,16384 -o "$work/perf.data" \
  "$FITSTREAM" replay --format jsonl --input "$work/days.jsonl" --out "$work/out" >/dev/null 2>"$work/perf.err"
perf report -i "$work/perf.data" --children --stdio --no-call-graph --sort symbol 2>/dev/null >"$work/report"
python3 - "$work/report" <<'PY'
import re, sys
parts = [
    ("whole replay (run_bounded)", r"fitstream::embedded::run_bounded$"),
    ("input: JSON lines parsed into records", r"fitstream_simulator::jsonl::JsonLines<R> as core::iter::traits::iterator::Iterator>::next$"),
    ("input: records encoded as Kafka would carry them", r"fitstream::inputs::to_out_record$"),
    ("tasks: records delivered (decode, operators)", r"fitstream_runtime::embedded::Embedded::deliver$"),
    ("tasks: watermarks and timers (tick)", r"fitstream_runtime::embedded::Embedded::tick$"),
    ("segmenter refits (KMeans, quality)", r"fitstream_segmenter::app::fitting::FitTask::refit$"),
    ("segmenter KMeans nearest-centroid steps (every thread)", r"linfa_clustering::k_means::algorithm::closest_centroid$"),
    ("outputs written as JSON lines", r"fitstream::embedded::Outputs::write$"),
]
alloc = {"_int_malloc", "malloc", "_int_free", "cfree@GLIBC_2.2.5", "malloc_consolidate",
         "unlink_chunk.constprop.0", "__libc_calloc", "realloc", "_int_realloc", "free"}
children, self_alloc = {}, 0.0
for line in open(sys.argv[1]):
    m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(.*?)\s*$", line)
    if not m:
        continue
    total, own = float(m.group(1)), float(m.group(2))
    sym = re.sub(r"\s+-\s+-$", "", m.group(3)).strip()  # perf's empty IPC columns
    children.setdefault(sym, total)
    if sym in alloc:
        self_alloc += own
for name, pattern in parts:
    hit = max((v for s, v in children.items() if re.search(pattern, s)), default=0.0)
    print(f"replay-profile: {name} {hit:.1f}%")
print(f"replay-profile: allocator (malloc, free and their internals, own time) {self_alloc:.1f}%")
PY
