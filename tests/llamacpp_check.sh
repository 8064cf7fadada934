#!/usr/bin/env bash
# Real llama.cpp in the loop (issue 12), bounded for the test suite: scripts/vs_llamacpp.sh without
# speed, RTN q4_k_m, a few chunks. llama-perplexity and `qforge eval --protocol llama.cpp` agree
# within 0.5% (1.5% on the embedded model) and greedy generation gives the same 32 tokens on
# qforge's convert output, qforge's q4_k_m and llama-quantize's Q4_K_M of the embedded model, and
# of llama-sp-58m and qwen-bpe-31m when ../shared exists (a greedy mismatch counts only if llama.cpp
# on qforge's f32 decoding of the file differs too). Skips (exit 77) when scripts/build_llamacpp.sh
# has not been run.
# usage: QFORGE=path/to/qforge llamacpp_check.sh REPO_ROOT
set -euo pipefail
ROOT=$1
if [ "${QFORGE_SANITIZED:-}" = 1 ]; then
  echo "SKIP: under sanitizers (the release suite runs this check)"
  exit 77
fi
BIN=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}/bin
for t in llama-perplexity llama-quantize llama-completion; do
  if ! [ -x "$BIN/$t" ]; then
    echo "SKIP: llama.cpp not built ($BIN/$t missing; run scripts/build_llamacpp.sh)"
    exit 77
  fi
done
export METHOD=rtn SPEED=0 THREADS=${THREADS:-2}
# The embedded model on the repository's sample text (3 chunks of 128 tokens, 189 scored). On so
# few tokens of a 7M model llama.cpp's 8-bit activations (Q8_K) alone move PPL by up to 0.9%:
# llama-perplexity gives 324.35 on llama-quantize's Q4_K_M and 327.20 on qforge's f32 decoding of
# the same file, qforge 327.17 on both. So 1.5% here; the 0.5% of the issue holds on the models of
# ../shared below.
status=0
TEXT=$ROOT/data/sample.txt CTX=128 CHUNKS=3 TOL=0.015 bash "$ROOT/scripts/vs_llamacpp.sh" \
  "$ROOT/models/tiny-llama-bpe-7m" || status=1
SHARED=$ROOT/../shared
if [ -d "$SHARED/models/llama-sp-58m" ] && [ -f "$SHARED/data/valid.txt" ]; then
  # The first 40 kB of valid.txt hold the 4 x 512 tokens scored (same chunks as the whole file;
  # both engines otherwise spend most of this test tokenizing 2.2 MB).
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  head -c 40000 "$SHARED/data/valid.txt" | sed '$d' >"$TMP/valid-head.txt"
  TEXT=$TMP/valid-head.txt CTX=512 CHUNKS=4 bash "$ROOT/scripts/vs_llamacpp.sh" \
    "$SHARED/models/llama-sp-58m" "$SHARED/models/qwen-bpe-31m" || status=1
else
  echo "../shared absent: llama-sp-58m and qwen-bpe-31m not checked"
fi
exit $status
