#!/usr/bin/env bash
# ctest entry for one peer check: quantizes the shared models (scripts/peers/quantize.sh, kept
# between runs in $PEERS_WORK) and runs scripts/peers/check_NAME.py in the environment that
# scripts/peers/setup.sh made. Exits 77 (ctest SKIP) with the reason when a tool is missing.
# Usage: run_check.sh transformers|vllm [variant ...]   (vllm: default all six checkpoints)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
NAME=$1
PY=${PEERS_HOME:-$HOME/.cache/qforge/peers}/vllm/bin/python
SHARED=${SHARED:-$HERE/../../../shared}
skip() { echo "SKIP: $*"; exit 77; }
[[ -z ${QFORGE_SANITIZED:-} ]] || skip "sanitizer build (the peer checks run in the release build)"
[[ -d $SHARED/models/llama-sp-58m ]] || skip "no shared models in $SHARED"
[[ -x $PY ]] || skip "no peer environment $PY (install it: scripts/peers/setup.sh vllm)"
"$PY" -c "import ${NAME/transformers/compressed_tensors}" 2>/dev/null ||
  skip "$NAME does not import in $PY (scripts/peers/setup.sh vllm)"
WORK=${PEERS_WORK:-$HOME/.cache/qforge/peers-work}
SHARED=$SHARED bash "$HERE/quantize.sh" "$WORK"
SHARED=$SHARED exec "$PY" "$HERE/check_$NAME.py" "$WORK" "${@:2}"
