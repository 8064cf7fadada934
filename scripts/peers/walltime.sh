#!/usr/bin/env bash
# Wall-time ratio of qforge GPTQ to llm-compressor GPTQ (issue 14's target: <= 0.5x on the same 2
# threads), run back to back on one model with compare.sh's settings, so that both see the same
# machine. The load average is printed before and after each run: on a shared machine the ratio
# means something only while it stays well below the core count. Runs at nice 15 like every other
# long job here. Usage: walltime.sh [MODEL]   (default llama-sp-58m); CALIB_ROWS as compare.sh
# (default 32 here: the reduced calibration of the last compare run). QFORGE_BEFORE=BINARY also
# runs an earlier qforge build on the same job after the pair (before and after in one run).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-$HOME/.cache/qforge/peers-walltime}
CALIB_ROWS=${CALIB_ROWS:-32}
source "$HERE/common.sh"
model=${1:-llama-sp-58m}
src=$SHARED/models/$model
group=$(group_size "$model")
w=$WORK/$model
rm -rf "$w"
mkdir -p "$w"
ids=$(calib_ids "$src" "$w")

# run NAME CMD...: prints the load average, then wall and CPU seconds and peak RSS of CMD
run() {
  local name=$1
  shift
  echo "$name: before: $(uptime)"
  nice -n 15 /usr/bin/time -f "$name: wall %e s, user %U s, sys %S s, peak RSS %M KiB" \
    "$@" >"$w/$name.log" 2>"$w/$name.err" || { tail -n 3 "$w/$name.err"; return 1; }
  tail -n 1 "$w/$name.err"
  echo "$name: after: $(uptime)"
}
# qforge_gptq NAME BINARY: that qforge build's GPTQ on the job, as compare.sh runs it
qforge_gptq() {
  run "$1" "$2" quantize "$src" -o "$w/$1" --format "int4-g$group" \
    --calib "$SHARED/data/calib.txt" --calib-tokens $((CALIB_ROWS * 512)) --seq-len 512 -t 2
}
qforge_gptq qforge-gptq "$QFORGE"
run llmc-gptq "$LLMC" "$HERE/peer_quantize.py" llmc-gptq "$src" "$w/llmc-gptq" "$ids" $group
if [[ -n ${QFORGE_BEFORE:-} ]]; then qforge_gptq qforge-before-gptq "$QFORGE_BEFORE"; fi
