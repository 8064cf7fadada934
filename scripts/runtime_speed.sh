#!/usr/bin/env bash
# Prefill and decode speed of packed quantized models next to the bf16 original, in one run (the
# machine is shared: compare the ratios, not the absolute numbers across days). Each format is
# RTN-quantized everywhere (embedding and head included). Prints a Markdown table for
# docs/RESULTS.md with the kernel each format ran.
# Usage: scripts/runtime_speed.sh [MODEL] ["FORMATS"] [THREADS] [QFORGE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-../shared/models/llama-sp-58m}
FORMATS=${2:-q8_0 q4_k q4_0 iq4_xs int4-g128 int8-channel nvfp4 mxfp4 nf4 fp8-e4m3}
T=${3:-2}
Q=${4:-build/release/qforge}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qforge-speed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
bench() { "$Q" bench "$1" --threads "$T" --repeats 3 --json 2>/dev/null; }
BASE=$(bench "$M")
echo "| format | prefill tok/s | decode tok/s | prefill vs bf16 | decode vs bf16 | weights/token | % of decode roofline | kernels |"
echo "|---|---|---|---|---|---|---|---|"
row() {
  python3 - "$1" "$BASE" "$2" <<'PY'
import json, sys
name, base, j = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {name} | {j['prefill_tok_s']:.0f} | {j['decode_tok_s']:.0f} | "
      f"{j['prefill_tok_s'] / base['prefill_tok_s']:.2f} | {j['decode_tok_s'] / base['decode_tok_s']:.2f} | "
      f"{j['weight_bytes_per_token'] / 2**20:.1f} MiB | {100 * j['decode_roofline_fraction']:.0f}% | {j['kernels']} |")
PY
}
row bf16 "$BASE"
for f in $FORMATS; do
  "$Q" quantize "$M" -o "$WORK/$f" --format "$f" --method rtn \
    --tensor-format "model.embed_tokens.weight=$f" --tensor-format "lm_head.weight=$f" \
    > /dev/null 2>&1 || { echo "| $f | (quantize failed) |"; continue; }
  row "$f" "$(bench "$WORK/$f")"
  rm -rf "${WORK:?}/$f"
done
