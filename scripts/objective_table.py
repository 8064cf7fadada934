#!/usr/bin/env python3
"""Per-linear GPTQ vs RTN layer objectives tr((W-Q) H (W-Q)^T) of GPTQ-quantized qforge outputs.

Reads each directory's config.json (qforge's record, at quantization_config or under its "qforge"
key) and prints a Markdown table: one row per linear, per directory the ratio GPTQ / RTN (below 1:
GPTQ's objective is lower), and a last row with the largest ratio. Exit status 1 if any ratio >= 1.
Usage: scripts/objective_table.py LABEL=DIR [LABEL=DIR ...]
"""
import json
import os
import sys


def record(d):
    with open(os.path.join(d, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    return qc.get("qforge", qc)


def main():
    cols = [a.split("=", 1) for a in sys.argv[1:]]
    if not cols:
        sys.exit(__doc__)
    tensors = [record(d)["tensors"] for _, d in cols]
    names = list(tensors[0].keys())
    short = lambda n: n.replace("model.layers.", "").replace(".weight", "")
    print("| linear | " + " | ".join(f"{label} GPTQ/RTN" for label, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    worst = [0.0] * len(cols)
    for n in names:
        cells = []
        for i, t in enumerate(tensors):
            r = t[n]["objective"] / t[n]["objective_rtn"]
            worst[i] = max(worst[i], r)
            cells.append(f"{r:.3f}")
        print(f"| {short(n)} | " + " | ".join(cells) + " |")
    print("| **largest** | " + " | ".join(f"**{w:.3f}**" for w in worst) + " |")
    sys.exit(0 if all(w < 1 for w in worst) else 1)


if __name__ == "__main__":
    main()
