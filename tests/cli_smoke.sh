#!/usr/bin/env bash
# End-to-end CLI checks on the embedded model: every subcommand works, and bad input gives a
# one-line error naming the problem with exit code 1 (never a crash). $QFORGE is the binary.
set -u
ROOT=$1
M=$ROOT/models/tiny-llama-bpe-7m
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0; passes=0

ok() {  # ok NAME CMD... : must exit 0
  local name=$1; shift
  if "$@" >"$TMP/out" 2>"$TMP/err"; then passes=$((passes + 1))
  else echo "FAIL $name: exit $? ($(head -c 300 "$TMP/err"))"; fails=$((fails + 1)); fi
}
bad() {  # bad NAME PATTERN CMD... : must exit 1 with a one-line error matching PATTERN
  local name=$1 pattern=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  if [ "$rc" -ne 1 ]; then echo "FAIL $name: exit $rc, expected 1 ($(head -c 300 "$TMP/err"))"; fails=$((fails + 1)); return; fi
  if ! grep -q -- "$pattern" "$TMP/err"; then echo "FAIL $name: stderr lacks '$pattern': $(cat "$TMP/err")"; fails=$((fails + 1)); return; fi
  if [ "$(wc -l <"$TMP/err")" -ne 1 ]; then echo "FAIL $name: error is not one line: $(cat "$TMP/err")"; fails=$((fails + 1)); return; fi
  passes=$((passes + 1))
}

for sub in info run eval bench formats quantize plan convert; do ok "help-$sub" "$QFORGE" "$sub" --help; done
ok formats-json "$QFORGE" formats --json
grep -q '"mxfp4"' "$TMP/out" || { echo "FAIL formats-json: no mxfp4"; fails=$((fails + 1)); }
bad unknown-format "known:" "$QFORGE" formats --format no-such-format
ok info "$QFORGE" info "$M"
grep -q "llama" "$TMP/out" || { echo "FAIL info: no architecture"; fails=$((fails + 1)); }
ok run "$QFORGE" run "$M" -p "Once upon a time" -n 8 --temp 0
ok run-sampled "$QFORGE" run "$M" -p "The" -n 8 --temp 0.8 --top-p 0.9 --seed 3
printf 'It was the best of times, it was the worst of times. %.0s' {1..20} >"$TMP/text.txt"
ok eval-json "$QFORGE" eval "$M" --text "$TMP/text.txt" --ctx 64 --json
grep -q '"ppl"' "$TMP/out" || { echo "FAIL eval-json: no ppl key"; fails=$((fails + 1)); }
ok bench "$QFORGE" bench "$M" --prefill 16 --decode 4 --repeats 1 --json

ok quantize-rtn "$QFORGE" quantize "$M" -o "$TMP/q8" --format int8-channel --method rtn
ok eval-ref "$QFORGE" eval "$TMP/q8" --ref "$M" --text "$TMP/text.txt" --ctx 64 --json
grep -q '"kld_mean"' "$TMP/out" || { echo "FAIL eval-ref: no kld_mean"; fails=$((fails + 1)); }
ok eval-ref-several "$QFORGE" eval "$TMP/q8" "$M" --ref "$M" --text "$TMP/text.txt" --ctx 64 --json
[[ $(grep -c '"kld_mean"' "$TMP/out") == 2 ]] || { echo "FAIL eval-ref-several: not 2 lines"; fails=$((fails + 1)); }
bad eval-several-no-ref "give --ref" "$QFORGE" eval "$TMP/q8" "$M" --text "$TMP/text.txt"
[[ -f "$TMP/q8/qforge-evaluations.json" ]] || { echo "FAIL eval-ref: no evaluation log"; fails=$((fails + 1)); }
ok info-evaluated "$QFORGE" info "$TMP/q8" --no-tensors
grep -q "^evaluated: .*mean KLD" "$TMP/out" || { echo "FAIL info-evaluated: no measured KLD"; fails=$((fails + 1)); }
ok run-quantized "$QFORGE" run "$TMP/q8" -p "Once" -n 4 --temp 0
bad quantize-exists "exists" "$QFORGE" quantize "$M" -o "$TMP/q8" --format int8-channel --method rtn
bad quantize-format "unknown format" "$QFORGE" quantize "$M" -o "$TMP/qx" --format int4-g100x --method rtn
bad quantize-calib "calibration" "$QFORGE" quantize "$M" -o "$TMP/qx" --format int4-g64
bad quantize-rowlen "down_proj.weight.*multiple of 512" "$QFORGE" quantize "$M" -o "$TMP/qx" --format int4-g64 --method rtn --tensor-format down_proj=int4-g512
[ ! -e "$TMP/qx" ] || { echo "FAIL quantize left output behind"; fails=$((fails + 1)); }
ok quantize-fallback "$QFORGE" quantize "$M" -o "$TMP/qf" --format int4-g64 --method rtn --tensor-format down_proj=int4-g512 --fallback int4-g128
grep -q "fallback: model.layers.0.mlp.down_proj.weight" "$TMP/err" || { echo "FAIL quantize-fallback: not reported"; fails=$((fails + 1)); }
grep -q '"quant_method": "compressed-tensors"' "$TMP/qf/config.json" || { echo "FAIL quantize-fallback: not compressed-tensors"; fails=$((fails + 1)); }
ok run-compressed-tensors "$QFORGE" run "$TMP/qf" -p "Once" -n 4 --temp 0

# Outlier methods, activations and the KV cache.
printf 'Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about. %.0s' {1..12} >"$TMP/calib.txt"
ok quantize-awq "$QFORGE" quantize "$M" -o "$TMP/qa" --format int4-g64 --method awq --calib "$TMP/calib.txt" --calib-tokens 256 --seq-len 64
grep -q "AWQ: scaled" "$TMP/out" || { echo "FAIL quantize-awq: no AWQ summary"; fails=$((fails + 1)); }
ok quantize-w8a8 "$QFORGE" quantize "$M" -o "$TMP/qw" --format int8-channel --method rtn --act int8 --smooth 0.5 --calib "$TMP/calib.txt" --calib-tokens 256 --seq-len 64 --kv int8
grep -q '"input_activations"' "$TMP/qw/config.json" || { echo "FAIL quantize-w8a8: no input_activations"; fails=$((fails + 1)); }
ok quantize-rotate "$QFORGE" quantize "$M" -o "$TMP/qr" --format int4-g64 --method rtn --rotate hadamard --rotate-online
ok run-rotated "$QFORGE" run "$TMP/qr" -p "Once" -n 4 --temp 0
ok info-quantized "$QFORGE" info "$TMP/qr" --no-tensors
grep -q "^quantized: .*rotation (online)" "$TMP/out" || { echo "FAIL info-quantized: $(cat "$TMP/out")"; fails=$((fails + 1)); }
ok eval-kv "$QFORGE" eval "$M" --ref "$M" --text "$TMP/text.txt" --ctx 64 --kv int4 --kv-keys token --json
ok bench-kv "$QFORGE" bench "$M" --prefill 16 --decode 4 --repeats 1 --kv int8 --json
bad quantize-smooth-nocalib "calibration" "$QFORGE" quantize "$M" -o "$TMP/qx" --format int8-channel --method rtn --smooth 0.5
bad quantize-online-alone "rotate-online needs" "$QFORGE" quantize "$M" -o "$TMP/qx" --format int8-channel --method rtn --rotate-online
bad eval-kv-group "does not divide head_dim" "$QFORGE" eval "$M" --text "$TMP/text.txt" --ctx 64 --kv int4 --kv-keys token --kv-group 48
[ ! -e "$TMP/qx" ] || { echo "FAIL refused quantize left output behind"; fails=$((fails + 1)); }

# Mixed precision: plan to a budget, quantize by the plan, or both in one command (measurement reused).
P=(--calib "$TMP/calib.txt" --calib-tokens 256 --seq-len 64 --probe-tokens 64 --formats int4-g64,int8-channel)
ok plan "$QFORGE" plan "$M" "${P[@]}" --bpw 5 -o "$TMP/p.json"
grep -q '"predicted_kld"' "$TMP/p.json" || { echo "FAIL plan: no predicted_kld"; fails=$((fails + 1)); }
[ -e "$TMP/p.json.measurement.json" ] || { echo "FAIL plan: measurement not saved"; fails=$((fails + 1)); }
ok quantize-plan "$QFORGE" quantize "$M" --plan "$TMP/p.json" -o "$TMP/qp" --calib "$TMP/calib.txt" --calib-tokens 256 --seq-len 64
grep -q '"request": "--bpw 5"' "$TMP/qp/config.json" || { echo "FAIL quantize-plan: plan not recorded"; fails=$((fails + 1)); }
ok run-planned "$QFORGE" run "$TMP/qp" -p "Once" -n 4 --temp 0
ok quantize-bpw "$QFORGE" quantize "$M" --bpw 4.5 "${P[@]}" --measurement "$TMP/p.json.measurement.json" -o "$TMP/qb"
grep -q "reusing the measurement" "$TMP/err" || { echo "FAIL quantize-bpw: measurement not reused"; fails=$((fails + 1)); }
ok quantize-size "$QFORGE" quantize "$M" --size 9000000 "${P[@]}" --measurement "$TMP/p.json.measurement.json" -o "$TMP/qs"
[ "$(stat -c %s "$TMP/qs/model.safetensors")" -le 9000000 ] || { echo "FAIL quantize-size: over budget"; fails=$((fails + 1)); }
bad quantize-no-format "needs --format FMT, --plan FILE, --bpw B or --size BYTES" "$QFORGE" quantize "$M" -o "$TMP/qx" --method rtn
bad plan-bpw-low "smallest possible is .* the largest" "$QFORGE" plan "$M" "${P[@]}" --bpw 1 -o "$TMP/px.json"
bad plan-bpw-high "smallest possible is .* the largest" "$QFORGE" plan "$M" "${P[@]}" --bpw 20 -o "$TMP/px.json"
bad plan-size-low "smallest possible file is .* the largest" "$QFORGE" quantize "$M" "${P[@]}" --size 1000 -o "$TMP/qx"
P1=("${P[@]:0:8}")  # without --formats
bad plan-no-format-fits "no candidate format can take" "$QFORGE" plan "$M" "${P1[@]}" --formats int4-g512 --bpw 5 -o "$TMP/px.json"
bad plan-unknown-format "unknown format 'int4-g100x'" "$QFORGE" plan "$M" "${P1[@]}" --formats int4-g100x --bpw 5 -o "$TMP/px.json"
sed 's/"shape": \[/"shape": [7, /' "$TMP/p.json" >"$TMP/p-shape.json"
bad quantize-plan-shape "p-shape.json: .*\(a plan for another model\|shape must be\)" "$QFORGE" quantize "$M" --plan "$TMP/p-shape.json" -o "$TMP/qx" --method rtn
sed 's/model\.layers\.0\./model.layers.9./' "$TMP/p.json" >"$TMP/p-names.json"
bad quantize-plan-names "p-names.json: tensor model.layers.9.*(a plan for another model?)" "$QFORGE" quantize "$M" --plan "$TMP/p-names.json" -o "$TMP/qx" --method rtn
sed 's/"int4-g64"/"int4-g100x"/' "$TMP/p.json" >"$TMP/p-format.json"
bad quantize-plan-format "p-format.json: tensor .*unknown format" "$QFORGE" quantize "$M" --plan "$TMP/p-format.json" -o "$TMP/qx" --method rtn
[ ! -e "$TMP/px.json" ] && [ ! -e "$TMP/qx" ] || { echo "FAIL refused plan left output behind"; fails=$((fails + 1)); }
# A plan over GGUF types written as GGUF: --size bounds the whole .gguf file (its vocabulary and
# F32 norms included), refused budgets name both limits of that file, and a plan naming formats
# llama.cpp has no type for is refused; nothing is written when refused.
PG=("${P1[@]}" --formats q4_0,q8_0)
ok quantize-size-gguf "$QFORGE" quantize "$M" --size 6000000 "${PG[@]}" -o "$TMP/qs.gguf"
s=$(stat -c %s "$TMP/qs.gguf" 2>/dev/null || echo 0)
[ "$s" -le 6000000 ] && [ "$s" -gt 5900000 ] || { echo "FAIL quantize-size-gguf: $s bytes for --size 6000000"; fails=$((fails + 1)); }
bad quantize-size-gguf-high "smallest possible file is .* the largest" "$QFORGE" quantize "$M" --size 100000000 "${PG[@]}" --measurement "$TMP/qs.gguf.measurement.json" -o "$TMP/qx.gguf"
bad quantize-size-gguf-low "smallest possible file is .* the largest" "$QFORGE" quantize "$M" --size 4000000 "${PG[@]}" --measurement "$TMP/qs.gguf.measurement.json" -o "$TMP/qx.gguf"
bad quantize-plan-gguf-type "has no GGUF type" "$QFORGE" quantize "$M" --plan "$TMP/p.json" -o "$TMP/qx.gguf" --method rtn
[ ! -e "$TMP/qx.gguf" ] || { echo "FAIL refused GGUF plan left output behind"; fails=$((fails + 1)); }

# Bad input: one line naming the file and the problem, exit 1.
bad missing-model "no-such-dir" "$QFORGE" info "$TMP/no-such-dir"
mkdir -p "$TMP/trunc" && cp "$M/config.json" "$TMP/trunc/" && head -c 1000 "$M/model.safetensors" >"$TMP/trunc/model.safetensors"
bad truncated "model.safetensors" "$QFORGE" info "$TMP/trunc"
mkdir -p "$TMP/badjson" && cp "$M/model.safetensors" "$TMP/badjson/" && echo '{"model_type": "llama",' >"$TMP/badjson/config.json"
bad malformed-config "config.json" "$QFORGE" info "$TMP/badjson"
mkdir -p "$TMP/arch" && ln -s "$M/model.safetensors" "$TMP/arch/model.safetensors" && sed 's/"llama"/"mamba"/' "$M/config.json" >"$TMP/arch/config.json"
bad unknown-arch "mamba" "$QFORGE" info "$TMP/arch"
bad missing-text "nope.txt" "$QFORGE" eval "$M" --text "$TMP/nope.txt"

# GGUF: convert, then every reading command; a quantized GGUF; bad files refused in one line.
ok convert "$QFORGE" convert "$M" -o "$TMP/m.gguf"
ok info-gguf "$QFORGE" info "$TMP/m.gguf"
ok run-gguf "$QFORGE" run "$TMP/m.gguf" -p "Once upon a time" -n 8 --temp 0
ok eval-llamacpp "$QFORGE" eval "$TMP/m.gguf" --text "$TMP/text.txt" --ctx 64 --protocol llama.cpp
grep -q "llama.cpp: " "$TMP/out" || { echo "FAIL eval-llamacpp: no protocol line"; fails=$((fails + 1)); }
ok quantize-gguf "$QFORGE" quantize "$M" -o "$TMP/q.gguf" --format q4_k_m --method rtn
ok eval-gguf-ref "$QFORGE" eval "$TMP/q.gguf" --ref "$TMP/m.gguf" --text "$TMP/text.txt" --ctx 64
bad convert-exists "exists" "$QFORGE" convert "$M" -o "$TMP/m.gguf"
bad quantize-gguf-format "has no GGUF type" "$QFORGE" quantize "$M" -o "$TMP/qx.gguf" --format int4-g64 --method rtn
[ ! -e "$TMP/qx.gguf" ] || { echo "FAIL refused GGUF quantize left output behind"; fails=$((fails + 1)); }
head -c 1000 "$TMP/m.gguf" >"$TMP/cut.gguf"
bad gguf-truncated "truncated" "$QFORGE" info "$TMP/cut.gguf"
printf 'GGML' | cat - <(tail -c +5 "$TMP/m.gguf") >"$TMP/magic.gguf"
bad gguf-magic "bad magic" "$QFORGE" run "$TMP/magic.gguf" -p x -n 1
head -c "$(($(stat -c %s "$TMP/m.gguf") - 4096))" "$TMP/m.gguf" >"$TMP/short.gguf"
bad gguf-data-past-end "past the end" "$QFORGE" eval "$TMP/short.gguf" --text "$TMP/text.txt"

echo "$passes passed, $fails failed"
exit $((fails > 0))
