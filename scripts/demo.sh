#!/usr/bin/env bash
# Set-up command (a): install dependencies, build, and run the main job on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target qforge
Q=build/release/qforge
M=models/tiny-llama-bpe-7m
$Q info "$M"
$Q eval "$M" --text data/sample.txt --ctx 128
$Q run "$M" -p "Once upon a time" -n 48 --temp 0
# The main job: quantize (GPTQ, int4 groups of 64, compressed-tensors layout), measure what was
# lost against the original, and run the result.
OUT=$(mktemp -d)/tiny-int4
$Q quantize "$M" -o "$OUT" --format int4-g64 --calib data/sample.txt --calib-tokens 384 --seq-len 64
$Q eval "$OUT" --ref "$M" --text data/sample.txt --ctx 128
$Q run "$OUT" -p "Once upon a time" -n 48 --temp 0
rm -rf "$(dirname "$OUT")"
