#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-perplexity, llama-quantize, llama-imatrix, llama-completion,
# llama-bench) from the llama.cpp source that llama-cpp-python's source distribution on PyPI
# carries (pinned), into ~/.cache/qforge/llamacpp/bin (outside the repository). Tests and
# scripts that compare with llama.cpp use it when present. Idempotent; takes minutes (CI does not
# run it).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36  # llama-cpp-python
PREFIX=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}
TOOLS=(llama-perplexity llama-quantize llama-imatrix llama-completion llama-bench)
# "-noamx": see the flags below (a build of the same version with AMX is rebuilt).
stamp="$PREFIX/bin/.llama-cpp-python-$VERSION-noamx"
have_all() { for t in "${TOOLS[@]}"; do [ -x "$PREFIX/bin/$t" ] || return 1; done; }
if [ -f "$stamp" ] && have_all; then
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
LLAMA=$SRC/llama_cpp_python-$VERSION/vendor/llama.cpp
# A tool added to TOOLS later builds incrementally in the same build directory.
[ -f "$LLAMA/CMakeLists.txt" ] ||
  tar xzf "$sdist" -C "$SRC" "llama_cpp_python-$VERSION/vendor/llama.cpp"
# The CPU's features, but never AMX: ggml's native build uses AMX tiles for Q4_0/Q4_1/Q8_0/Q4_K
# when the CPU lists them, and VMs that do not enable the tile state in XCR0 (this development VM,
# Firecracker) kill the process on the first `tilezero` (SIGILL) although /proc/cpuinfo says amx.
flags=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
cpu=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $cpu " == *" $1 "* ]] && echo ON || echo OFF; }
if [ "$(uname -m)" = x86_64 ]; then
  flags+=(-DGGML_SSE42="$(has sse4_2)" -DGGML_AVX="$(has avx)" -DGGML_AVX2="$(has avx2)"
    -DGGML_FMA="$(has fma)" -DGGML_F16C="$(has f16c)" -DGGML_BMI2="$(has bmi2)"
    -DGGML_AVX_VNNI="$(has avx_vnni)" -DGGML_AVX512="$(has avx512bw)"
    -DGGML_AVX512_VBMI="$(has avx512vbmi)" -DGGML_AVX512_VNNI="$(has avx512_vnni)"
    -DGGML_AVX512_BF16="$(has avx512_bf16)")
else
  flags=(-DGGML_NATIVE=ON)
fi
cmake -S "$LLAMA" -B "$LLAMA/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_APP=OFF "${flags[@]}" >&2
cmake --build "$LLAMA/build" -j "${JOBS:-$(nproc)}" --target "${TOOLS[@]}" >&2
# Copy then rename: a tool that is running keeps its old file.
for t in "${TOOLS[@]}"; do
  cp "$LLAMA/build/bin/$t" "$PREFIX/bin/.$t.new" && mv -f "$PREFIX/bin/.$t.new" "$PREFIX/bin/$t"
done
rm -f "$PREFIX"/bin/.llama-cpp-python-*
touch "$stamp"
echo "$PREFIX/bin"
