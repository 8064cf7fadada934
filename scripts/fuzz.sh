#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time (seconds, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-30}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "${JOBS:-$(nproc)}"
for f in build/fuzz/fuzz/*_fuzz; do
  name=$(basename "$f")
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  seeds=fuzz/seeds/${name%_fuzz}
  echo "fuzz: $name for ${SECONDS_EACH}s"
  "$f" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=0 \
       "$corpus" ${seeds:+$( [ -d "$seeds" ] && echo "$seeds")} 2>&1 | tail -n 3
done
