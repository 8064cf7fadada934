#!/usr/bin/env bash
# Every kind of GGUF qforge writes, read by llama.cpp's own `gguf` Python package: `convert` of
# the embedded model (and of the zoo when ../shared exists), and `quantize -o x.gguf` with each
# GGUF block type; gguf's numpy dequantization of every tensor must equal qforge's decode bit for
# bit. Skips (exit 77) when the venv from scripts/install-gguf-venv.sh is missing.
# usage: QFORGE=path/to/qforge gguf_python_check.sh REPO_ROOT
set -euo pipefail
ROOT=$1
if [ "${QFORGE_SANITIZED:-}" = 1 ]; then
  echo "SKIP: under sanitizers (the release suite runs this check)"
  exit 77
fi
PY=${QFORGE_GGUF_VENV:-$HOME/.cache/qforge/gguf-venv}/bin/python
if ! [ -x "$PY" ] || ! "$PY" -c "import gguf" 2>/dev/null; then
  echo "SKIP: no gguf venv at $PY (run scripts/install-gguf-venv.sh)"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODEL=$ROOT/models/tiny-llama-bpe-7m
check() {  # FILE.gguf ARCH [--no-tokenizer]: read it, then decode it with qforge and compare
  "$QFORGE" convert "$1" -o "${1%.gguf}.decoded.gguf" --type f32 >/dev/null
  "$PY" "$ROOT/tests/gguf_python_check.py" "$1" "${1%.gguf}.decoded.gguf" --arch "$2" "${@:3}"
}
for t in f32 f16 bf16; do
  "$QFORGE" convert "$MODEL" -o "$TMP/embedded-$t.gguf" --type "$t" >/dev/null
  check "$TMP/embedded-$t.gguf" llama
done
for f in q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs; do
  "$QFORGE" quantize "$MODEL" -o "$TMP/embedded-$f.gguf" --format "$f" --method rtn \
    --tensor-format "embed_tokens=$f" >/dev/null
  check "$TMP/embedded-$f.gguf" llama
done
# GPTQ with its scale refit (quant/scale_refit.h) rewrites block scales after the codes: the
# blocks it writes must decode in gguf's numpy exactly as in qforge (q4_k_m: q4_k and q6_k).
"$QFORGE" quantize "$MODEL" -o "$TMP/embedded-gptq-q4_k_m.gguf" --format q4_k_m --method gptq \
  --calib "$ROOT/data/sample.txt" --calib-tokens 256 --seq-len 128 >/dev/null
check "$TMP/embedded-gptq-q4_k_m.gguf" llama
SHARED=$ROOT/../shared
if [ -d "$SHARED/zoo" ]; then
  for arch in llama mistral qwen2 qwen3 gemma phi3; do
    "$QFORGE" convert "$SHARED/zoo/$arch" -o "$TMP/zoo-$arch.gguf" >/dev/null
    check "$TMP/zoo-$arch.gguf" "$([ $arch = mistral ] && echo llama || echo $arch)" --no-tokenizer
  done
else
  echo "../shared absent: zoo architectures not checked"
fi
