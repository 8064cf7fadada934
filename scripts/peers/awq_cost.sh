#!/usr/bin/env bash
# llm-compressor's AWQModifier W4A16 (compare.sh's llmc-awq row) with its cost measured as it goes:
# every INTERVAL seconds one line of wall seconds, CPU seconds (user + system of the Python process)
# and AWQ grid points finished (summed over the "Grid search for ..." progress bars of its log), so
# that the CPU cost per grid point (independent of other people's load) and an extrapolated total
# can be read off a run that is stopped early. Same calibration rows and settings as compare.sh.
# Usage: awq_cost.sh [MODEL [MAX_SECONDS]]   (default llama-sp-58m, no limit: runs to the end;
# with a limit the quantization is stopped there). CALIB_ROWS as compare.sh (default 32 here).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-$HOME/.cache/qforge/peers-awq}
CALIB_ROWS=${CALIB_ROWS:-32}
source "$HERE/common.sh"
INTERVAL=${INTERVAL:-30}
model=${1:-llama-sp-58m}
limit=${2:-0}
src=$SHARED/models/$model
group=$(group_size "$model")
w=$WORK/$model
rm -rf "$w/llmc-awq"
mkdir -p "$w"
ids=$(calib_ids "$src" "$w")

# points LOG: grid points finished = the sum over bars of each bar's highest "n/20"
points() {
  tr '\r' '\n' <"$1" | grep -oE 'Grid search for [^:]+: +[0-9]+%\|[^|]*\| *[0-9]+/[0-9]+' |
    awk '{ split($NF, a, "/"); if (a[1] + 0 > m[$4]) m[$4] = a[1] + 0 }
         END { s = 0; for (k in m) s += m[k]; printf "%d points in %d bars", s, length(m) }'
}

nice -n 15 /usr/bin/time -v -o "$w/llmc-awq.time" "$LLMC" "$HERE/peer_quantize.py" llmc-awq "$src" \
  "$w/llmc-awq" "$ids" $group >"$w/llmc-awq.log" 2>&1 &
timer=$!
sleep 2
py=$(pgrep -P $timer)
start=$(date +%s)
tick=$(getconf CLK_TCK)
echo "llmc-awq $model: $CALIB_ROWS x 512 calibration rows, pid $py, $(uptime)"
while kill -0 "$py" 2>/dev/null; do
  now=$(date +%s)
  cpu=$(awk -v t="$tick" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$py/stat" 2>/dev/null || echo "?")
  echo "wall $((now - start)) s, cpu $cpu s, $(points "$w/llmc-awq.log"), load $(cut -d' ' -f1 /proc/loadavg)"
  if ((limit > 0 && now - start >= limit)); then
    echo "stopped at the limit of $limit s"
    kill "$py"
    break
  fi
  sleep "$INTERVAL"
done
wait $timer || true
grep -E "Elapsed|User time|System time|Maximum resident" "$w/llmc-awq.time" || true
echo "final: $(points "$w/llmc-awq.log")"
