#!/usr/bin/env bash
# Peak RSS of running a quantized model (qforge bench: 512-token prefill, 128 decoded tokens)
# next to its file size and the issue's budget, file + KV cache + 64 MiB: quantized weights stay
# packed, so memory follows the file. Each format is RTN-quantized everywhere (embedding and head
# included); the compressed-tensors ones (int4-g128, int8-channel) are repacked once at load.
# Prints a Markdown table for docs/RESULTS.md.
# Usage: scripts/runtime_memory.sh [MODEL] ["FORMATS"] [QFORGE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-../shared/models/llama-sp-58m}
FORMATS=${2:-q8_0 q6_k q4_k q4_0 iq4_xs int4-g128 int8-channel nvfp4 mxfp4 nf4 fp8-e4m3}
Q=${3:-build/release/qforge}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qforge-rtmem.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
row() {  # name dir
  local bytes json
  bytes=$(du -b --apparent-size -c "$2"/*.safetensors | tail -1 | cut -f1)
  json=$("$Q" bench "$2" --threads 2 --repeats 1 --json 2>/dev/null)
  python3 - "$1" "$bytes" "$json" <<'PY'
import json, sys
name, size, j = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
mib = lambda b: b / 2**20
budget = size + j["kv_cache_bytes"] + 64 * 2**20
print(f"| {name} | {mib(size):.1f} MiB | {mib(j['kv_cache_bytes']):.1f} MiB | "
      f"{mib(j['model_peak_rss_bytes']):.1f} MiB | {mib(budget):.1f} MiB | "
      f"{'yes' if j['model_peak_rss_bytes'] <= budget else 'NO'} | {j['kernels']} |")
PY
}
echo "| format | file | KV cache | model peak RSS | budget (file + KV + 64 MiB) | within | kernels |"
echo "|---|---|---|---|---|---|---|"
row bf16 "$M"
for f in $FORMATS; do
  "$Q" quantize "$M" -o "$WORK/$f" --format "$f" --method rtn \
    --tensor-format "model.embed_tokens.weight=$f" --tensor-format "lm_head.weight=$f" \
    > /dev/null 2>&1 || { echo "| $f | (quantize failed) |"; continue; }
  row "$f" "$WORK/$f"
  rm -rf "${WORK:?}/$f"
done
