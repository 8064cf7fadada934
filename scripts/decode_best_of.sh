#!/usr/bin/env bash
# Decode speed of one or more qforge builds and of llama.cpp on the same GGUF files, for a machine
# whose speed swings from run to run (a shared VM: other tenants only ever slow a run down). Each
# of ROUNDS rounds runs every engine once per file, one after the other, and the best decode rate
# of each engine is kept: the rate it reaches when nothing else is in its way. vs_llamacpp.sh's
# single run per engine can differ by 30% between two runs here.
#
# usage: scripts/decode_best_of.sh FILE.gguf... [-- QFORGE_BINARY...]
#   (default binary: build/release/qforge). Prints each engine's rates and its best, then every
#   qforge build's best over llama.cpp's best.
# env:   ROUNDS (5)  THREADS (2)  NGEN (128 tokens, decoded from an empty context, as llama-bench's
#        tg)  QFORGE_LLAMACPP (~/.cache/qforge/llamacpp, scripts/build_llamacpp.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5} THREADS=${THREADS:-2} NGEN=${NGEN:-128}
BENCH=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}/bin/llama-bench
[ -x "$BENCH" ] || { echo "SKIP: no $BENCH (run scripts/build_llamacpp.sh)"; exit 77; }
files=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
[ $# -gt 0 ] && shift
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("$ROOT/build/release/qforge")
[ ${#files[@]} -gt 0 ] || { echo "usage: $0 FILE.gguf... [-- QFORGE_BINARY...]" >&2; exit 2; }

qforge_rate() {  # BINARY FILE
  "$1" bench "$2" --prefill 16 --decode "$NGEN" --decode-context 0 --repeats 1 -t "$THREADS" \
    --json 2>/dev/null | sed -n 's/.*"decode_tok_s":\([0-9.eE+-]*\).*/\1/p'
}
llama_rate() {  # FILE: the last column but one of llama-bench's CSV is avg_ts
  "$BENCH" -m "$1" -p 0 -n "$NGEN" -t "$THREADS" -r 1 -o csv 2>/dev/null | tail -n 1 |
    awk -F, '{ gsub(/"/, ""); print $(NF - 1) }'
}
best() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }

echo "decode tok/s, $THREADS threads, $NGEN tokens from an empty context, best of $ROUNDS rounds"
for f in "${files[@]}"; do
  declare -A rates=()
  for ((r = 1; r <= ROUNDS; r++)); do
    for b in "${binaries[@]}"; do rates[$b]+="$(qforge_rate "$b" "$f") "; done
    rates[llama.cpp]+="$(llama_rate "$f") "
  done
  echo "== $(basename "$f")"
  llama_best=$(echo "${rates[llama.cpp]}" | best)
  printf '  %-40s best %8.1f   (%s)\n' llama.cpp "$llama_best" "${rates[llama.cpp]% }"
  for b in "${binaries[@]}"; do
    q=$(echo "${rates[$b]}" | best)
    printf '  %-40s best %8.1f   (%s)  / llama.cpp %.3f\n' "$b" "$q" "${rates[$b]% }" \
      "$(awk -v q="$q" -v l="$llama_best" 'BEGIN { print q / l }')"
  done
  unset rates
done
