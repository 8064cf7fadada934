#!/usr/bin/env bash
# Two builds of bench/kernels_bench compared in one run, for a change to a kernel on a shared,
# noisy machine: A, B, A, B, each --benchmark_repetitions=REPS; per case the best median of each
# binary's two rounds, and B / A.
# Usage: scripts/kernels_ab.sh A_BINARY B_BINARY [FILTER] [REPS]
#   e.g. cp build/release/bench/kernels_bench /tmp/kb-before; (change, rebuild);
#        scripts/kernels_ab.sh /tmp/kb-before build/release/bench/kernels_bench \
#            'BM_GemvPacked/(q6_k|q4_k)/(1|4)/1/'
set -euo pipefail
A=$1
B=$2
FILTER=${3:-'BM_GemvPacked/.*/(1|4)/1/'}
REPS=${4:-3}
[ "$REPS" -ge 2 ] || { echo "REPS must be >= 2 (Google Benchmark reports medians from 2)" >&2; exit 2; }
CSV=$(mktemp)
trap 'rm -f "$CSV"' EXIT
for round in 1 2; do
  for side in A B; do
    bin=$A
    [ "$side" = B ] && bin=$B
    echo "round $round: $side ($bin)" >&2
    "$bin" --benchmark_filter="$FILTER" --benchmark_repetitions="$REPS" \
      --benchmark_report_aggregates_only=true --benchmark_format=csv 2>/dev/null |
      grep '_median"' | sed "s/^/$side,/" >>"$CSV"
  done
done
python3 - "$CSV" <<'PY'
import csv, sys
best = {}
for row in csv.reader(open(sys.argv[1])):
    side, name, real_ns = row[0], row[1].replace("_median", ""), float(row[3])
    best[(name, side)] = min(best.get((name, side), real_ns), real_ns)
print("| case | A ms | B ms | B / A |")
print("|---|---|---|---|")
for name in sorted({n for n, _ in best}):
    a, b = best[(name, "A")] / 1e6, best[(name, "B")] / 1e6
    print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.3f} |")
PY
