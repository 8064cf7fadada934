#!/usr/bin/env python3
"""Exact bits per quantized linear weight of a `qforge quantize` output: every scale, zero point and
fallback included, from the output's quantization record and `qforge formats -f NAME --json`.

Usage: scripts/bits_per_weight.py QFORGE_BINARY OUTPUT_DIR
"""
import json
import subprocess
import sys

qforge, out = sys.argv[1:3]
qc = json.load(open(f"{out}/config.json"))["quantization_config"]
formats, bits, weights = {}, 0, 0
for t in qc.get("qforge", qc)["tensors"].values():
    name, (rows, cols) = t["format"], t["shape"]
    if name not in formats:
        listing = subprocess.check_output([qforge, "formats", "-f", name, "--json"])
        formats[name] = json.loads(listing)[0]
    f = formats[name]
    bits += f["bits_per_weight"] * rows * cols + f["tensor_overhead_bits"]
    weights += rows * cols
print(bits / weights)
