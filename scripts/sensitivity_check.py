#!/usr/bin/env python3
"""Compares the two sensitivity estimators of a measurement made with `qforge plan --probe-all`:
(a) the layer objective tr((W-Q)H(W-Q)^T), raw and calibrated by one probe per tensor (what the
planner uses), against (b) the end-to-end KLD with only that tensor quantized, over every
(linear, candidate) pair. Prints Spearman rank correlations and the median ratio predicted/measured.

  scripts/sensitivity_check.py OUT/plans/measurement.json
"""
import json
import statistics
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from plan_sweep import spearman  # noqa: E402


def main():
    m = json.load(open(sys.argv[1]))
    raw, calibrated, measured, ratios = [], [], [], []
    for t in m["tensors"]:
        if t["kind"] != "linear":
            continue
        for c in t["candidates"]:
            if c["kld_measured"] < 0 or c["format"] == t["probe_format"]:
                continue  # the probe itself is exact by construction
            raw.append(c["objective"])
            calibrated.append(c["kld_predicted"])
            measured.append(c["kld_measured"])
            if c["kld_measured"] > 0:
                ratios.append(c["kld_predicted"] / c["kld_measured"])
    if not measured:
        sys.exit("no end-to-end measurements besides the probes: measure with --probe-all")
    print(f"{len(measured)} (linear, candidate) pairs besides the probes")
    print(f"Spearman(raw objective, measured KLD):        {spearman(raw, measured):.4f}")
    print(f"Spearman(calibrated objective, measured KLD): {spearman(calibrated, measured):.4f}")
    q = statistics.quantiles(ratios, n=10)
    print(f"predicted/measured: median {statistics.median(ratios):.3f}, "
          f"10th percentile {q[0]:.3f}, 90th {q[-1]:.3f}")


if __name__ == "__main__":
    main()
