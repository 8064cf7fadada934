#!/usr/bin/env bash
# Reproduces every reference perplexity in ../shared/models/*/training_meta.json with `qforge eval`
# (ppl_valid on data/valid.txt and ppl_wikitext2_test on WikiText-2 test) and checks each within
# 0.1% relative and the predicted-token count exactly. Prints a Markdown table for docs/RESULTS.md.
# Usage: scripts/reproduce_ppl.sh [QFORGE_BINARY] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qforge}
THREADS=${2:-$(nproc)}
SHARED=${QFORGE_SHARED_DIR:-../shared}
[ -d "$SHARED/models" ] || { echo "reproduce_ppl: $SHARED not present; skipping"; exit 0; }
json_num() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
fails=0
echo "| model | text | tokens | reference ppl | qforge ppl | rel. diff | seconds |"
echo "|---|---|---|---|---|---|---|"
for meta in "$SHARED"/models/*/training_meta.json; do
  dir=$(dirname "$meta"); name=$(basename "$dir")
  for pair in "valid:$SHARED/data/valid.txt" "wikitext2_test:$SHARED/data/wikitext-2-raw/wiki.test.raw"; do
    key=${pair%%:*}; text=${pair#*:}
    ref=$(json_num "$meta" "ppl_$key"); ref_tokens=$(json_num "$meta" "ppl_tokens_$key")
    out=$("$Q" eval "$dir" --text "$text" --ctx 512 --threads "$THREADS" --json)
    ppl=$(echo "$out" | sed -n 's/.*"ppl":\([-0-9.eE+]*\).*/\1/p')
    tokens=$(echo "$out" | sed -n 's/.*"tokens":\([0-9]*\).*/\1/p')
    secs=$(echo "$out" | sed -n 's/.*"seconds":\([-0-9.eE+]*\).*/\1/p')
    rel=$(awk -v a="$ppl" -v b="$ref" 'BEGIN { d = (a - b) / b; printf "%.2e", d }')
    ok=$(awk -v a="$ppl" -v b="$ref" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; print (d <= 1e-3) ? "yes" : "no" }')
    [ "$tokens" = "$ref_tokens" ] || ok=no
    printf "| %s | %s | %s | %.4f | %.4f | %s | %.0f |\n" "$name" "$key" "$tokens" "$ref" "$ppl" "$rel" "$secs"
    [ "$ok" = yes ] || { echo "MISMATCH: $name $key: ppl $ppl vs $ref, tokens $tokens vs $ref_tokens" >&2; fails=$((fails + 1)); }
  done
done
exit $((fails > 0))
