#!/usr/bin/env bash
# The embedded replay against a plain JSON parse of the same lines (issue 16's goal: within
# 4x). `fitstream simulate` writes the simulator's three default days (seed 42, about 257k
# records, defects included) as JSON lines; then, on the same file:
#   - parse: Python's json.loads of every line, once (what reading the file costs at least);
#   - replay: `fitstream replay --format jsonl` (release build), the whole embedded pipeline
#     (profiler, segmenter with its refits, planner) with outputs to JSON lines and the
#     reconciliation.
# Each is run FITSTREAM_BENCH_RUNS times (default 3); the best wall time of each counts.
# Prints one line per run, then:
#   replay-vs-parse: lines L, parse S1 s, replay S2 s (R records/s), ratio S2/S1
# Not part of CI.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
runs="${FITSTREAM_BENCH_RUNS:-3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/replay-vs-parse.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cargo build --release -q -j 2 -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"
RUST_LOG=warn "$FITSTREAM" simulate --out "$work/days.jsonl" >/dev/null
lines="$(wc -l <"$work/days.jsonl")"

best() { sort -g | head -1; }
parse_times=()
replay_times=()
for i in $(seq 1 "$runs"); do
  s="$(python3 - "$work/days.jsonl" <<'PY'
import json, sys, time
started = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)
        n += 1
print(f"{time.perf_counter() - started:.3f}")
PY
)"
  parse_times+=("$s")
  rm -rf "$work/out"
  started="$(date +%s.%N)"
  RUST_LOG=warn "$FITSTREAM" replay --format jsonl --input "$work/days.jsonl" --out "$work/out" >"$work/replay.log"
  r="$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$started" "$(date +%s.%N)")"
  replay_times+=("$r")
  echo "run $i: parse $s s, replay $r s"
done
p="$(printf '%s\n' "${parse_times[@]}" | best)"
r="$(printf '%s\n' "${replay_times[@]}" | best)"
python3 - "$lines" "$p" "$r" <<'PY'
import sys
lines, p, r = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"replay-vs-parse: lines {lines}, parse {p:.2f} s, replay {r:.2f} s ({lines / r:.0f} records/s), ratio {r / p:.1f}")
PY
