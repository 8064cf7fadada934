#!/usr/bin/env bash
# qforge and llama.cpp on the same GGUF files: llama-perplexity's PPL against
# `qforge eval --protocol llama.cpp` (same protocol), and greedy generation of the same prompt.
# Needs llama.cpp from scripts/build_llamacpp.sh. Prints one line per file and the ratio; exits 1
# if a PPL differs by more than 0.5% or the greedy texts differ.
# usage: scripts/vs_llamacpp.sh QFORGE TEXT CTX CHUNKS FILE.gguf...
set -euo pipefail
QFORGE=$1 TEXT=$2 CTX=$3 CHUNKS=$4
shift 4
BIN=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}/bin
[ -x "$BIN/llama-perplexity" ] || { echo "no llama.cpp at $BIN (run scripts/build_llamacpp.sh)"; exit 77; }
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-"Once upon a time"}
status=0
for f in "$@"; do
  ll=$("$BIN/llama-perplexity" -m "$f" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -b "$CTX" \
        -t "$THREADS" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  qf=$("$QFORGE" eval "$f" --text "$TEXT" --protocol llama.cpp --ctx "$CTX" --chunks "$CHUNKS" \
        --threads "$THREADS" --json 2>/dev/null | sed -n 's/.*"ppl":\([0-9.eE+-]*\).*/\1/p')
  ratio=$(awk -v a="$qf" -v b="$ll" 'BEGIN { printf "%.5f", a / b }')
  ok=$(awk -v r="$ratio" 'BEGIN { print (r > 0.995 && r < 1.005) ? "ok" : "DIFFERS" }')
  echo "$(basename "$f"): llama-perplexity $ll  qforge $qf  ratio $ratio  $ok"
  [ "$ok" = ok ] || status=1
  # Greedy: llama-completion prints the prompt and the continuation; qforge run prints the same.
  lt=$("$BIN/llama-completion" -m "$f" -p "$PROMPT" -n 32 --temp 0 -no-cnv --no-warmup \
        -t "$THREADS" --no-display-prompt 2>/dev/null || true)
  qt=$("$QFORGE" run "$f" -p "$PROMPT" -n 32 --temp 0 --threads "$THREADS" 2>/dev/null \
        | sed '$d' || true)
  if [ "${qt#"$PROMPT"}" = "$lt" ]; then echo "  greedy 32 tokens: same text"
  else echo "  greedy differs:"; echo "    llama.cpp: $lt"; echo "    qforge:    ${qt#"$PROMPT"}"; status=1; fi
done
exit $status
