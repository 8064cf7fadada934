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
