#!/usr/bin/env bash
# Shows that quantization memory does not grow with depth: synthetic BF16 models with the same
# layer shape (hidden 1024, intermediate 2816) and more and more layers, up to ~1 GB, each
# quantized with GPTQ (int4-g128); peak RSS should stay flat while the file grows ~9x.
# Prints a Markdown table for docs/RESULTS.md. Needs ~1.2 GB of free space under $TMPDIR.
# Usage: scripts/memory_flat.sh [QFORGE_BINARY] ["LAYER COUNTS"]
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qforge}
LAYERS=${2:-4 12 38}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qforge-memflat.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Calibration text only drives the memory pattern here; the repo's sample, repeated, is enough.
for _ in 1 2 3 4 5 6 7 8; do cat data/sample.txt; done > "$WORK/calib.txt"
echo "| layers | model file | method | peak RSS | seconds |"
echo "|---|---|---|---|---|"
for n in $LAYERS; do
  python3 scripts/make_synthetic_model.py "$WORK/m$n" --layers "$n" > /dev/null
  size=$(stat -c %s "$WORK/m$n/model.safetensors")
  for method in rtn gptq; do
    /usr/bin/time -f "%M %e" -o "$WORK/time" "$Q" quantize "$WORK/m$n" -o "$WORK/q$n" \
      --format int4-g128 --method "$method" --calib "$WORK/calib.txt" --calib-tokens 2048 \
      --seq-len 256 --force > /dev/null 2>&1
    read -r rss_kb secs < "$WORK/time"
    printf "| %d | %.0f MiB | %s | %.0f MiB | %.0f |\n" "$n" "$(echo "$size / 1048576" | bc -l)" \
      "$method" "$(echo "$rss_kb / 1024" | bc -l)" "$secs"
    rm -rf "$WORK/q$n"
  done
  rm -rf "$WORK/m$n"
done
