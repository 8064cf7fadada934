# shellcheck shell=bash disable=SC2034  # the variables are the callers'
# Settings and helpers shared by compare.sh, walltime.sh and awq_cost.sh (sourced, not run).
# The caller sets HERE (this folder) and, where it differs from the default, WORK and CALIB_ROWS.
ROOT=$(cd "$HERE/../.." && pwd)
QFORGE=${QFORGE:-$ROOT/build/release/qforge}
SHARED=${SHARED:-$ROOT/../shared}
PEERS_HOME=${PEERS_HOME:-$HOME/.cache/qforge/peers}
LLMC=$PEERS_HOME/llmcompressor/bin/python
GPTQM=$PEERS_HOME/gptqmodel/bin/python
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2

# group_size MODEL: the int4 group every tool uses (qwen-bpe-31m's rows are 576 wide: 128 does not
# divide them).
group_size() {
  if [[ $1 == qwen-bpe-31m ]]; then echo 64; else echo 128; fi
}

# calib_ids SRC DIR: the file of CALIB_ROWS x 512 calibration token ids in DIR (qforge's chunking of
# calib.txt, made once by peer_quantize.py); prints its path.
calib_ids() {
  local ids=$2/calib_ids-$CALIB_ROWS.json
  if [[ ! -f $ids ]]; then
    "$LLMC" "$HERE/peer_quantize.py" ids "$1" "$SHARED/data/calib.txt" $((CALIB_ROWS * 512)) 512 \
      >"$ids.tmp"
    mv "$ids.tmp" "$ids"
  fi
  echo "$ids"
}
