#!/usr/bin/env bash
# Installs the Debian 12 packages qforge builds against. Idempotent; needs root (or sudo).
set -euo pipefail
PKGS=(build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev clang-format
      libhwy-dev libopenblas-dev liblapacke-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      libsentencepiece-dev libgtest-dev libgmock-dev libbenchmark-dev libdnnl-dev
      # Debian's dnnl-config.cmake calls find_package(OpenCL): its library and headers are only
      # recommended by libdnnl-dev, which --no-install-recommends leaves out.
      ocl-icd-opencl-dev opencl-c-headers)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
