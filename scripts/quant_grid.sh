#!/usr/bin/env bash
# Quantizes a model into each format with each method (RTN and GPTQ by default) and evaluates each
# result against the original (docs/RESULTS.md, issues 4 and 5). One Markdown table row per (format, method) on stdout:
#   format | method | bits per quantized weight (fallbacks included) | PPL | ref PPL | KLD mean | KLD p99 | top-1 | quantize s | peak RSS MiB
# Usage: scripts/quant_grid.sh MODEL_DIR "fmt1 fmt2 ..." [METHODS] [EVAL_TOKENS] [EXTRA_QUANTIZE_ARGS...]
#   METHODS defaults to "rtn gptq" (any --method: awq, awq+gptq ...); EVAL_TOKENS to 65536 (first
#   tokens of data/valid.txt).
# Calibration: ../shared/data/calib.txt with qforge's default 128 x 512 tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QFORGE:-build/release/qforge}
SHARED=${QFORGE_SHARED_DIR:-../shared}
MODEL=$1
FORMATS=$2
METHODS=${3:-rtn gptq}
TOKENS=${4:-65536}
shift $(($# < 4 ? $# : 4))
OUT=${GRID_DIR:-/tmp/qforge-grid}
mkdir -p "$OUT"
name=$(basename "$MODEL")
for fmt in $FORMATS; do
  for method in $METHODS; do
    dir="$OUT/$name-$fmt-$method"
    calib=()
    [ "$method" != rtn ] && calib=(--calib "$SHARED/data/calib.txt")
    /usr/bin/time -f "%M %e" -o "$dir.time" "$Q" quantize "$MODEL" -o "$dir" --format "$fmt" \
      --method "$method" "${calib[@]}" --force "$@" > "$dir.log" 2>&1
    read -r rss_kb secs < "$dir.time"
    "$Q" eval "$dir" --ref "$MODEL" --text "$SHARED/data/valid.txt" --max-tokens "$TOKENS" \
      --json > "$dir.eval.json" 2>/dev/null
    python3 - "$dir.eval.json" "$fmt" "$method" "$(scripts/bits_per_weight.py "$Q" "$dir")" "$secs" "$rss_kb" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
fmt, method, bpw, secs, rss = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"| {fmt} | {method} | {bpw:.4g} | {e['ppl']:.4f} | {e['ref_ppl']:.4f} | {e['kld_mean']:.5f} | "
      f"{e['kld_p99']:.4f} | {100 * e['top1_agreement']:.2f}% | {secs:.1f} | {rss / 1024:.0f} |", flush=True)
EOF
  done
done
