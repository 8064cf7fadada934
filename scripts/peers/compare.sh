#!/usr/bin/env bash
# Same work, side by side: qforge, llm-compressor and GPTQModel quantize the shared models on the
# same calibration tokens (qforge's: the first CALIB_ROWS x 512 tokens of calib.txt, no BOS), and
# every output is evaluated by one protocol, `qforge eval --ref ORIGINAL --tokenizer ORIGINAL` on
# the first 65,536 tokens of valid.txt (KLD, top-1, PPL). The original's tokenizer, because a peer
# saves only tokenizer.json (llm-compressor drops llama-sp-58m's tokenizer.model), and qforge reads
# a tokenizer.json converted from SentencePiece only approximately (whitespace runs): without it the
# rows would be scored on different tokens (llama-sp-58m: the same first 4,096, not 65,536).
# Wall time and peak RSS of each quantization come from
# /usr/bin/time -v; everything runs on 2 threads. Needs scripts/peers/setup.sh llmcompressor
# gptqmodel (a peer whose environment is missing is skipped and said so).
# Usage: compare.sh [MODEL ...]   (default llama-sp-58m qwen-bpe-31m); results in $WORK/results.md
# Finished runs are kept and not redone; RUNS=REGEX runs only the quantizations it matches
# (qforge-gptq qforge-awq qforge-awqgptq qforge-w8a8 llmc-gptq llmc-awq llmc-w8a8 gptqmodel); EVAL=0 skips the
# evaluations (to quantize everything first), EVAL=REGEX evaluates only the outputs it matches.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-$HOME/.cache/qforge/peers-compare}
CALIB_ROWS=${CALIB_ROWS:-128}
source "$HERE/common.sh"
EVAL_TOKENS=${EVAL_TOKENS:-65536}
MODELS=("$@")
[[ ${#MODELS[@]} -gt 0 ]] || MODELS=(llama-sp-58m qwen-bpe-31m)
mkdir -p "$WORK"

# timed NAME CMD...: runs CMD, keeps its output in NAME.log and wall seconds / peak RSS in NAME.time
timed() {
  local name=$1
  shift
  if [[ -f $name.time ]] || ! [[ $(basename "$name") =~ ${RUNS:-.} ]]; then return 0; fi
  echo "== $(basename "$(dirname "$name")") $(basename "$name"): $*"
  if /usr/bin/time -v -o "$name.time.tmp" "$@" >"$name.log" 2>&1; then
    mv "$name.time.tmp" "$name.time"
  else
    echo "   failed (exit $?), see $name.log: $(tail -n 1 "$name.log")"
    mv "$name.time.tmp" "$name.failed"
  fi
}

for model in "${MODELS[@]}"; do
  src=$SHARED/models/$model
  w=$WORK/$model
  mkdir -p "$w"
  group=$(group_size "$model")
  calib=(--calib "$SHARED/data/calib.txt" --calib-tokens $((CALIB_ROWS * 512)) --seq-len 512 -t 2)
  timed "$w/qforge-gptq" "$QFORGE" quantize "$src" -o "$w/qforge-gptq" --format "int4-g$group" "${calib[@]}"
  timed "$w/qforge-awq" "$QFORGE" quantize "$src" -o "$w/qforge-awq" --format "int4-g$group" --method awq "${calib[@]}"
  timed "$w/qforge-awqgptq" "$QFORGE" quantize "$src" -o "$w/qforge-awqgptq" --format "int4-g$group" --method awq+gptq "${calib[@]}"
  timed "$w/qforge-w8a8" "$QFORGE" quantize "$src" -o "$w/qforge-w8a8" --format int8-channel --act int8 --smooth 0.5 "${calib[@]}"
  if [[ -x $LLMC ]]; then
    ids=$(calib_ids "$src" "$w")
    for m in gptq awq w8a8; do
      timed "$w/llmc-$m" "$LLMC" "$HERE/peer_quantize.py" "llmc-$m" "$src" "$w/llmc-$m" "$ids" $group
    done
  else
    echo "SKIP llm-compressor: no $LLMC (scripts/peers/setup.sh llmcompressor)"
  fi
  if [[ -x $GPTQM && -f $w/calib_ids-$CALIB_ROWS.json ]]; then
    timed "$w/gptqmodel" "$GPTQM" "$HERE/peer_quantize.py" gptqmodel "$src" "$w/gptqmodel" \
      "$w/calib_ids-$CALIB_ROWS.json" $group
  else
    echo "SKIP GPTQModel: no $GPTQM (scripts/peers/setup.sh gptqmodel)"
  fi
  for out in "$w"/qforge-gptq "$w"/qforge-awq "$w"/qforge-awqgptq "$w"/qforge-w8a8 "$w"/llmc-gptq "$w"/llmc-awq "$w"/llmc-w8a8 "$w"/gptqmodel-dense; do
    # only finished quantizations (another compare.sh may still be writing one)
    [[ -d $out && -f ${out%-dense}.time && ! -f $out.eval.json ]] || continue
    [[ $(basename "$out") =~ ${EVAL:-.} && ${EVAL:-} != 0 ]] || continue
    echo "== eval $out"
    "$QFORGE" eval "$out" --ref "$src" --tokenizer "$src" --text "$SHARED/data/valid.txt" \
      --max-tokens "$EVAL_TOKENS" --json -t 2 >"$out.eval.json.tmp" 2>"$out.eval.err" && mv "$out.eval.json.tmp" "$out.eval.json" ||
      { echo "   refused: $(tail -n 1 "$out.eval.err")"; rm -f "$out.eval.json.tmp"; }
  done
done
python3 "$HERE/compare_table.py" "$WORK" "${MODELS[@]}" | tee "$WORK/results.md"
