#!/usr/bin/env bash
# Quantizes the shared models into the checkpoints that the peer checks load, and dumps qforge's
# own logits for the first 512 tokens of valid.txt beside each:
#   $WORK/<model>/<variant>/            qforge quantize output (compressed-tensors)
#   $WORK/<model>/<variant>.logits.st   qforge eval --dump-logits (tokens I32 [512], logits F32)
# variants: bf16 (the original, linked without its reference_logits.safetensors, which vLLM would
# take for weights), w4a16 (GPTQ int4, group 128; 64 for Qwen's 576-wide
# rows), w8a8 (int8 per channel, int8 activations per token, SmoothQuant 0.5), fp8 (e4m3 per
# channel, RTN), fp8a8 (the same with e4m3 activations per token: FP8 W8A8), nvfp4 (RTN). Existing outputs are kept. Usage: quantize.sh [WORK]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QFORGE=${QFORGE:-$ROOT/build/release/qforge}
SHARED=${SHARED:-$ROOT/../shared}
WORK=${1:-${PEERS_WORK:-/tmp/qforge-peers}}
CALIB_TOKENS=${CALIB_TOKENS:-4096}  # the layout checks need a real GPTQ run, not a long one
TEXT=$SHARED/data/valid.txt

for model in llama-sp-58m qwen-bpe-31m; do
  src=$SHARED/models/$model
  group=128
  [[ $model == qwen-bpe-31m ]] && group=64
  mkdir -p "$WORK/$model"
  declare -A args=(
    [w4a16]="--format int4-g$group --calib $SHARED/data/calib.txt --calib-tokens $CALIB_TOKENS"
    [w8a8]="--format int8-channel --act int8 --smooth 0.5 --calib $SHARED/data/calib.txt --calib-tokens $CALIB_TOKENS"
    [fp8]="--format fp8-e4m3 --method rtn"
    [fp8a8]="--format fp8-e4m3 --act fp8-e4m3 --method rtn"
    [nvfp4]="--format nvfp4 --method rtn"
  )
  for variant in bf16 w4a16 w8a8 fp8 fp8a8 nvfp4; do
    dir=$WORK/$model/$variant
    if [[ $variant == bf16 ]]; then
      mkdir -p "$dir"
      for f in "$src"/*; do
        [[ $f == */reference_logits.safetensors ]] || ln -sf "$f" "$dir/"
      done
    elif [[ ! -d $dir ]]; then
      echo "== quantize $model $variant: ${args[$variant]}"
      # shellcheck disable=SC2086
      "$QFORGE" quantize "$src" -o "$dir" ${args[$variant]} >"$dir.log" 2>&1 ||
        { cat "$dir.log"; exit 1; }
    fi
    [[ -f $WORK/$model/$variant.logits.st ]] ||
      "$QFORGE" eval "$dir" --text "$TEXT" --max-tokens 512 \
        --dump-logits "$WORK/$model/$variant.logits.st" >/dev/null
  done
done
echo "checkpoints and logits in $WORK"
