#!/usr/bin/env bash
# Issue 5's measurements for one model (docs/RESULTS.md): AWQ and AWQ+GPTQ at 4 and 3 bits, W8A8
# with and without SmoothQuant, W4A8 with and without rotation, and the KV cache formats alone
# (the original weights with a quantized cache). One Markdown row per configuration:
#   config | weights | method | act | KV | bits | PPL | ref PPL | ΔPPL | KLD mean | KLD p99 | top-1 | quantize s | peak RSS MiB
# Usage: scripts/outlier_grid.sh MODEL_DIR [EVAL_TOKENS] [ONLY_REGEX]
#   EVAL_TOKENS: first tokens of data/valid.txt (default 65536). Calibration: ../shared/data/calib.txt,
#   qforge's default 128 x 512 tokens. Formats whose groups do not divide a row fall back to a
#   finer group of the same bits (Qwen's 576-wide rows: int4-g128 -> int4-g64).
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QFORGE:-build/release/qforge}
SHARED=${QFORGE_SHARED_DIR:-../shared}
MODEL=$1
TOKENS=${2:-65536}
ONLY=${3:-.}
OUT=${GRID_DIR:-/tmp/qforge-outliers}
mkdir -p "$OUT"
name=$(basename "$MODEL")
CALIB=(--calib "$SHARED/data/calib.txt")
F4=(--format int4-g128 --fallback int4-g64)
F3=(--format int3-g128 --fallback int3-g64)
W8=(--format int8-channel)
# name | quantize arguments (empty: evaluate the original with eval arguments) | eval arguments
CONFIGS=(
  "awq-int4|${F4[*]} --method awq|"
  "awq+gptq-int4|${F4[*]} --method awq+gptq|"
  "awq-int3|${F3[*]} --method awq|"
  "awq+gptq-int3|${F3[*]} --method awq+gptq|"
  "w8a8|${W8[*]} --method rtn --act int8|"
  "w8a8-smooth|${W8[*]} --method rtn --act int8 --smooth 0.5|"
  "w8a8-smooth-gptq|${W8[*]} --method gptq --act int8 --smooth 0.5|"
  "w8a8-rot|${W8[*]} --method rtn --act int8 --rotate hadamard|"
  "w8a8-rot-online|${W8[*]} --method rtn --act int8 --rotate hadamard --rotate-online|"
  "w8a8-smooth-rot-online|${W8[*]} --method rtn --act int8 --smooth 0.5 --rotate hadamard --rotate-online|"
  "w4a8-gptq|${F4[*]} --method gptq --act int8|"
  "w4a8-gptq-rot|${F4[*]} --method gptq --act int8 --rotate hadamard|"
  "w4a8-gptq-rot-online|${F4[*]} --method gptq --act int8 --rotate hadamard --rotate-online|"
  "w4a8-kv4-gptq-rot-online|${F4[*]} --method gptq --act int8 --rotate hadamard --rotate-online --kv int4|"
  "kv-int8||--kv int8"
  "kv-int8-token||--kv int8 --kv-keys token"
  "kv-fp8-token||--kv fp8 --kv-keys token"
  "kv-int4-channel-pre||--kv int4 --kv-keys channel --kv-key-rope pre"
  "kv-int4-channel-post||--kv int4 --kv-keys channel --kv-key-rope post"
  "kv-int4-token-post||--kv int4 --kv-keys token --kv-key-rope post"
  "kv-int4-token-pre||--kv int4 --kv-keys token --kv-key-rope pre"
  "kv-int4-channel-pre-g32||--kv int4 --kv-keys channel --kv-key-rope pre --kv-group 32"
)
for entry in "${CONFIGS[@]}"; do
  IFS='|' read -r config qargs eargs <<< "$entry"
  [[ "$config" =~ $ONLY ]] || continue
  dir="$OUT/$name-$config"
  secs=0 rss_kb=0 target=$MODEL
  if [ -n "$qargs" ]; then
    # shellcheck disable=SC2086
    /usr/bin/time -f "%M %e" -o "$dir.time" "$Q" quantize "$MODEL" -o "$dir" $qargs "${CALIB[@]}" \
      --force > "$dir.log" 2>&1
    read -r rss_kb secs < "$dir.time"
    target=$dir
  fi
  # shellcheck disable=SC2086
  "$Q" eval "$target" --ref "$MODEL" --text "$SHARED/data/valid.txt" --max-tokens "$TOKENS" \
    --json $eargs > "$dir.eval.json" 2>/dev/null
  bpw=""
  [ -n "$qargs" ] && bpw=$(scripts/bits_per_weight.py "$Q" "$dir")
  python3 - "$dir.eval.json" "$config" "$target" "$bpw" "$secs" "$rss_kb" "$qargs" "$eargs" <<'PY'
import json, os, sys
e = json.load(open(sys.argv[1]))
config, target, bpw, secs, rss, qargs, eargs = sys.argv[2:9]
bits, weights, method, act, kv = "16 (bf16)", "bf16", "—", "—", "f32"
cfg = os.path.join(target, "config.json")
if qargs:
    qc = json.load(open(cfg))["quantization_config"]
    r = qc.get("qforge", qc)
    bits, weights, method = f"{float(bpw):.3f}", r["format"], r["method"]
    if r.get("rotation"): method += " + rotation" + (" (online)" if r["rotation"]["online_down"] else "")
    if r.get("smooth"): method = f"smooth {r['smooth']['alpha']} + " + method
    if r.get("activations"): act = r["activations"]["format"] + " per token"
    if r.get("kv_cache"): kv = r["kv_cache"]["type"]
if eargs:
    kv = eargs.replace("--kv ", "").replace("--kv-keys ", "keys ").replace("--kv-key-rope ", "").replace("--kv-group ", "g")
dppl = 100 * (e["ppl"] / e["ref_ppl"] - 1)
print(f"| {config} | {weights} | {method} | {act} | {kv} | {bits} | {e['ppl']:.4f} | {e['ref_ppl']:.4f} | "
      f"{dppl:+.2f}% | {e['kld_mean']:.5f} | {e['kld_p99']:.4f} | {100 * e['top1_agreement']:.2f}% | "
      f"{float(secs):.1f} | {int(rss) / 1024:.0f} |", flush=True)
PY
done
