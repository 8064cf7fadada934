#!/usr/bin/env bash
# qforge's GGUF quantizations against llama.cpp's own, judged by llama.cpp itself: for each model
# and llama.cpp preset, llama-quantize with an imatrix from llama-imatrix and `qforge quantize
# --method gptq` both get the same calibration text (../shared/data/calib.txt, the same number of
# 512-token chunks), and llama-perplexity --kl-divergence (ctx 512) scores both files against the
# f32 original that `qforge convert` writes, on a held-out text (../shared/data/valid.txt).
# llama.cpp comes from scripts/build_llamacpp.sh (cached outside the repository). Prints a Markdown
# table for docs/RESULTS.md; the work files stay in $WORK when KEEP=1. With REUSE=1 (and KEEP=1,
# WORK=the same folder) the llama.cpp side found in $WORK from an earlier run with the same
# arguments is reused (f32 original, base logits, imatrix, llama-quantize files and their KLD
# logs): only qforge's files are made and scored again.
# Usage: scripts/gguf_quality.sh ["MODELS"] ["PRESETS"] [CHUNKS] [QFORGE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${1:-llama-sp-58m qwen-bpe-31m}
PRESETS=${2:-q4_k_m q3_k_m iq4_xs}
CHUNKS=${3:-40}          # scored 512-token chunks of valid.txt
Q=${4:-build/release/qforge}
CALIB_CHUNKS=${CALIB_CHUNKS:-128}  # 128 x 512 tokens: qforge's default --calib-tokens
BIN=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}/bin
CALIB=../shared/data/calib.txt
TEXT=../shared/data/valid.txt
T=${THREADS:-2}
for t in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$BIN/$t" ] || { echo "no $BIN/$t: run scripts/build_llamacpp.sh first" >&2; exit 1; }
done
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/qforge-ggufq.XXXXXX")}
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# Mean KLD and its ± from llama-perplexity's summary ("Mean    KLD:   0.012345 ±   0.000123").
kld() {
  if [ "${REUSE:-0}" = 1 ] && [ -s "$1.kld.log" ] && [ "${3:-}" = reuse ]; then
    awk '/Mean +KLD:/ {print $3, $5}' "$1.kld.log"; return
  fi
  "$BIN/llama-perplexity" -m "$1" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t "$T" \
    --kl-divergence-base "$2" --kl-divergence > "$1.kld.log" 2>&1
  awk '/Mean +KLD:/ {print $3, $5}' "$1.kld.log"
}

echo "| model | preset | llama.cpp + imatrix: bytes | mean KLD | qforge GPTQ: bytes | mean KLD | size diff | KLD ratio (qforge / llama.cpp) |"
echo "|---|---|---|---|---|---|---|---|"
for name in $MODELS; do
  M=../shared/models/$name
  [ -d "$M" ] || { echo "| $name | (model not in ../shared) |"; continue; }
  base=$WORK/$name-f32.gguf
  if [ "${REUSE:-0}" = 1 ] && [ -s "$WORK/$name.logits" ] && [ -s "$WORK/$name.imatrix" ]; then
    log "$name: reusing the base logits and the imatrix in $WORK"
  else
    log "$name: convert, KL base logits, imatrix"
    "$Q" convert "$M" -o "$base" --type f32 --force > /dev/null
    "$BIN/llama-perplexity" -m "$base" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t "$T" \
      --kl-divergence-base "$WORK/$name.logits" > "$WORK/$name.base.log" 2>&1
    "$BIN/llama-imatrix" -m "$base" -f "$CALIB" -c 512 --chunks "$CALIB_CHUNKS" -t "$T" \
      -o "$WORK/$name.imatrix" > "$WORK/$name.imatrix.log" 2>&1
  fi
  for p in $PRESETS; do
    ll=$WORK/$name-$p-llamacpp.gguf qf=$WORK/$name-$p-qforge.gguf
    if [ "${REUSE:-0}" = 1 ] && [ -s "$ll" ] && [ -s "$ll.kld.log" ]; then
      log "$name $p: reusing $ll"
    else
      log "$name $p: llama-quantize --imatrix"
      "$BIN/llama-quantize" --imatrix "$WORK/$name.imatrix" "$base" "$ll" "$p" "$T" \
        > "$ll.log" 2>&1
      rm -f "$ll.kld.log"
    fi
    log "$name $p: qforge quantize --method gptq"
    "$Q" quantize "$M" -o "$qf" --format "$p" --method gptq --calib "$CALIB" \
      --calib-tokens $((CALIB_CHUNKS * 512)) --seq-len 512 --force > "$qf.log" 2>&1
    log "$name $p: llama-perplexity --kl-divergence (both)"
    read -r k_ll e_ll < <(kld "$ll" "$WORK/$name.logits" reuse)
    read -r k_qf e_qf < <(kld "$qf" "$WORK/$name.logits")
    s_ll=$(stat -c %s "$ll") s_qf=$(stat -c %s "$qf")
    python3 - "$name" "$p" "$s_ll" "$k_ll" "$e_ll" "$s_qf" "$k_qf" "$e_qf" <<'PY'
import sys
name, p, s_ll, k_ll, e_ll, s_qf, k_qf, e_qf = sys.argv[1:]
s_ll, s_qf, k_ll, k_qf = int(s_ll), int(s_qf), float(k_ll), float(k_qf)
print(f"| {name} | {p} | {s_ll:,} | {k_ll:.5f} ± {e_ll} | {s_qf:,} | {k_qf:.5f} ± {e_qf} | "
      f"{100 * (s_qf / s_ll - 1):+.3f}% | {k_qf / k_ll:.3f} |")
PY
    [ "${KEEP:-0}" = 1 ] || rm -f "$ll" "$qf"
  done
  [ "${KEEP:-0}" = 1 ] || rm -f "$WORK/$name.logits" "$base"
done
