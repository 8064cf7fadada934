#!/usr/bin/env bash
# Cost of the planner's sensitivity measurement against one GPTQ quantization of the same model
# with the same calibration tokens and threads, run back to back (issue 13: <= 4x). Prints wall
# and CPU seconds of each, the ratios, and where the measurement's time went. The GPTQ run
# quantizes every linear, the embedding and the head as int4-g128 (the sweep's uniform plan,
# written from the fresh measurement). Qwen's 576-wide rows take no g128: use FORMAT=int4-g64.
# usage: scripts/plan_cost.sh QFORGE MODEL CALIB CALIB_TOKENS THREADS OUTDIR
set -euo pipefail
Q=$1 MODEL=$2 CALIB=$3 TOKENS=$4 THREADS=$5 OUT=$6
mkdir -p "$OUT"
rm -f "$OUT/measurement.json"
/usr/bin/time -f "%e %U %S" -o "$OUT/measure.time" "$Q" plan "$MODEL" --formats int --bpw 4 \
  --calib "$CALIB" --calib-tokens "$TOKENS" -t "$THREADS" --measurement "$OUT/measurement.json" \
  -o "$OUT/plan.json"
python3 - "$OUT" "${FORMAT:-int4-g128}" <<'PY'
import json, sys
out, fmt = sys.argv[1], sys.argv[2]
m = json.load(open(out + "/measurement.json"))
tensors, used = {}, 0
for t in m["tensors"]:
    c = next(c for c in t["candidates"] if c["format"] == fmt)
    tensors[t["name"]] = {"format": fmt, "shape": t["shape"], "bytes": c["bytes"],
                          "predicted_kld": c["kld_predicted"], "layer_objective": c["objective"]}
    used += c["bytes"]
json.dump({"predicted_kld": 0, "method": "gptq",
           "budget": {"request": "uniform " + fmt, "max_bytes": used, "used_bytes": used,
                      "bits_per_weight": 0}, "tensors": tensors}, open(out + "/uniform.json", "w"))
PY
/usr/bin/time -f "%e %U %S" -o "$OUT/gptq.time" "$Q" quantize "$MODEL" --plan "$OUT/uniform.json" \
  --calib "$CALIB" --calib-tokens "$TOKENS" -t "$THREADS" -o "$OUT/q" --force > /dev/null
python3 - "$OUT/measurement.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])).get("phase_seconds", {})
print("measurement phases (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in p.items()))
PY
read -r mw mu ms < "$OUT/measure.time"
read -r gw gu gs < "$OUT/gptq.time"
awk -v mw="$mw" -v mu="$mu" -v ms="$ms" -v gw="$gw" -v gu="$gu" -v gs="$gs" 'BEGIN {
  printf "measurement: %.1f s wall, %.1f s CPU\n", mw, mu + ms
  printf "GPTQ run:    %.1f s wall, %.1f s CPU\n", gw, gu + gs
  printf "ratio: %.2f wall, %.2f CPU\n", mw / gw, (mu + ms) / (gu + gs) }'
