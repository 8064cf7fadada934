#!/usr/bin/env bash
# Creates (once) the Python environment with llama.cpp's own `gguf` package, pinned, that
# tests/gguf_python_check.py uses to read every file qforge writes and to dequantize it
# independently of qforge. Lives outside the repository; idempotent; prints its python.
set -euo pipefail
VENV=${QFORGE_GGUF_VENV:-$HOME/.cache/qforge/gguf-venv}
PINS=(gguf==0.19.0 numpy==2.3.5)
have() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
}
if ! have; then
  echo "install-gguf-venv: creating $VENV (${PINS[*]})" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2
  have || { echo "install-gguf-venv: $VENV lacks ${PINS[*]} after install" >&2; exit 1; }
fi
echo "$VENV/bin/python"
