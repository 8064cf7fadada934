#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-perplexity, llama-quantize, llama-imatrix, llama-completion)
# from the llama.cpp source that llama-cpp-python's source distribution on PyPI carries (pinned),
# into ~/.cache/qforge/llamacpp/bin (outside the repository). Tests and scripts that compare with
# llama.cpp use it when present. Idempotent; takes minutes (CI does not run it).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36  # llama-cpp-python
PREFIX=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}
TOOLS=(llama-perplexity llama-quantize llama-imatrix llama-completion)
stamp="$PREFIX/bin/.llama-cpp-python-$VERSION"
if [ -f "$stamp" ]; then
  echo "$PREFIX/bin"
  exit 0
fi
PY=$(bash scripts/install-gguf-venv.sh)
SRC=$PREFIX/src
mkdir -p "$SRC" "$PREFIX/bin"
sdist=$SRC/llama_cpp_python-$VERSION.tar.gz
if ! [ -f "$sdist" ]; then
  # The sdist's metadata step needs its build backend; without isolation it must be installed.
  "$PY" -m pip install -q --disable-pip-version-check scikit-build-core==1.1.2 >&2
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    --no-build-isolation "llama-cpp-python==$VERSION" -d "$SRC" >&2
fi
tar xzf "$sdist" -C "$SRC" "llama_cpp_python-$VERSION/vendor/llama.cpp"
LLAMA=$SRC/llama_cpp_python-$VERSION/vendor/llama.cpp
cmake -S "$LLAMA" -B "$LLAMA/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_APP=OFF >&2
cmake --build "$LLAMA/build" -j "${JOBS:-$(nproc)}" --target "${TOOLS[@]}" >&2
for t in "${TOOLS[@]}"; do cp "$LLAMA/build/bin/$t" "$PREFIX/bin/"; done
touch "$stamp"
echo "$PREFIX/bin"
