#!/usr/bin/env bash
# Set-up command (b): install dependencies, build, and run the whole test suite
# (optimised build, then the same suite under ASan+UBSan, then the fuzzers for a bounded time).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The gguf package for tests/gguf_python_check.sh (which says so and skips if this failed).
scripts/install-gguf-venv.sh >/dev/null || echo "install-gguf-venv failed: gguf_python_check will skip" >&2
JOBS=${JOBS:-$(nproc)}
echo "== release build + tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$JOBS"
ctest --preset release -j "$JOBS"
echo "== ASan+UBSan build + tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$JOBS"
ctest --preset asan -j "$JOBS"
echo "== fuzzers (${FUZZ_SECONDS:-30}s each)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
