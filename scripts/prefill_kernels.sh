#!/usr/bin/env bash
# Prefill with exact f32 products (OpenBLAS sgemm on widened / decoded tiles) against the fast
# kernels (oneDNN's bf16 GEMM; int8 GEMM for W8A8), in one run on the same files, and what the fast
# kernels cost in accuracy (mean KLD of `eval --kernels fast` against the exact model on valid.txt).
# Each format is RTN-quantized (embedding and head at their stored type). Prints Markdown tables
# for docs/RESULTS.md. The machine is shared: compare the ratios, not absolute numbers across days.
# Usage: scripts/prefill_kernels.sh [MODEL] ["FORMATS"] [THREADS] [KLD_TOKENS] [QFORGE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-../shared/models/llama-sp-58m}
FORMATS=${2:-q8_0 q4_k q4_0 int4-g128 nvfp4 fp8-e4m3 w8a8:int8-channel w4a8:int4-g128}
T=${3:-2}
KLD_TOKENS=${4:-16384}
Q=${5:-build/release/qforge}
TEXT=../shared/data/valid.txt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qforge-prefill.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# bench DIR KERNELS [ENV...]: W8A8 / W4A8 rows measure their "exact" column with QFORGE_NO_VNNI=1,
# i.e. the previous runtime (int8 activations simulated in f32, sgemm) against the int8 GEMM.
bench() { env "${@:3}" "$Q" bench "$1" --threads "$T" --repeats 3 --decode 8 --kernels "$2" --json 2>/dev/null; }
kld() {
  "$Q" eval "$1" --ref "$1" --text "$TEXT" --max-tokens "$KLD_TOKENS" --threads "$T" \
    --kernels fast --json 2>/dev/null |
    python3 -c 'import json, sys; j = json.load(sys.stdin); print("%.2e | %.2f%%" % (j["kld_mean"], 100 * j["top1_agreement"]))'
}
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; $(date -u +%F); $T threads"
echo
echo "| model | exact prefill tok/s | fast prefill tok/s | fast / exact | fast KLD vs exact ($KLD_TOKENS tokens) | top-1 | fast kernels |"
echo "|---|---|---|---|---|---|---|"
row() {  # name dir [env for the exact column]
  local e f k
  e=$(bench "$2" exact "${@:3}")
  f=$(bench "$2" fast)
  k=$(kld "$2")
  python3 - "$1" "$e" "$f" "$k" <<'PY'
import json, sys
name, e, f, k = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
print(f"| {name} | {e['prefill_tok_s']:.0f} | {f['prefill_tok_s']:.0f} | "
      f"{f['prefill_tok_s'] / e['prefill_tok_s']:.2f} | {k} | {f['kernels']} |")
PY
}
row bf16 "$M"
for spec in $FORMATS; do
  name=$spec; f=$spec; act=()
  if [[ $spec == *:* ]]; then name=${spec%%:*}; f=${spec#*:}; act=(--act int8); fi
  "$Q" quantize "$M" -o "$WORK/$name" --format "$f" --method rtn "${act[@]}" \
    > "$WORK/quantize.log" 2>&1 || { echo "| $name | (quantize failed: $(tail -1 "$WORK/quantize.log")) |"; continue; }
  if ((${#act[@]})); then
    row "$name ($f, int8 activations; exact column: f32 simulation)" "$WORK/$name" QFORGE_NO_VNNI=1
  else
    row "$name ($f)" "$WORK/$name"
  fi
  rm -rf "${WORK:?}/$name"
done
