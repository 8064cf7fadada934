#!/usr/bin/env python3
"""Measured frontier of `qforge plan`: plans for a sweep of bits-per-weight budgets and uniform
formats (every linear, the embedding and the head in one format, written as plans over the same
measurement), each quantized with `qforge quantize --plan` and evaluated with
`qforge eval --ref ORIGINAL`. Writes OUT/results.json and prints a markdown table, the Spearman
rank correlation of predicted and measured KLD, and how often a planned mix beats the best uniform
format of equal or larger size.

  scripts/plan_sweep.py --qforge build/release/qforge --model ../shared/models/llama-sp-58m \
      --calib ../shared/data/calib.txt --text ../shared/data/valid.txt --eval-tokens 65536 \
      --sweep 2.5:8:0.25 --formats int --uniform int3-g128,int4-g128,int8-channel --out OUT
"""
import argparse
import json
import os
import subprocess
import sys
import time


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):  # ties share their mean rank
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy)


def uniform_plan(measurement, fmt):
    """Every tensor in `fmt` (kept where fmt cannot take its rows), as a plan file's JSON."""
    tensors, used, weights, kld = {}, 0, 0, 0.0
    for t in measurement["tensors"]:
        weights += t["shape"][0] * t["shape"][1]
        c = next((c for c in t["candidates"] if c["format"] == fmt), None)
        if c is None:
            used += t["kept_bytes"]
            continue
        used += c["bytes"]
        kld += c["kld_predicted"]
        tensors[t["name"]] = {"format": fmt, "shape": t["shape"], "bytes": c["bytes"],
                              "predicted_kld": c["kld_predicted"],
                              "layer_objective": c["objective"]}
    return {"predicted_kld": kld, "method": measurement["method"],
            "budget": {"request": "uniform " + fmt, "max_bytes": used, "used_bytes": used,
                       "bits_per_weight": 8.0 * used / weights},
            "tensors": tensors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--eval-tokens", type=int, default=65536)
    ap.add_argument("--calib-tokens", type=int, default=65536)
    ap.add_argument("--sweep", default="2.5:8:0.25")
    ap.add_argument("--formats", default="int")
    ap.add_argument("--uniform", default="")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--only-uniform", metavar="MEASUREMENT",
                    help="skip the plans: uniform formats only, over this saved measurement")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    q = a.qforge
    common = ["--calib", a.calib, "--calib-tokens", str(a.calib_tokens), "-t", a.threads]
    t0 = time.time()
    jobs = []
    if a.only_uniform:
        os.makedirs(os.path.join(a.out, "plans"), exist_ok=True)
        measurement = json.load(open(a.only_uniform))
    else:
        run([q, "plan", a.model, "--sweep", a.sweep, "--formats", a.formats, "-o",
             os.path.join(a.out, "plans")] + common)
        measurement = json.load(open(os.path.join(a.out, "plans", "measurement.json")))
        plans = sorted(f for f in os.listdir(os.path.join(a.out, "plans")) if f.startswith("plan-"))
        jobs = [("plan", f[len("plan-"):-len(".json")], os.path.join(a.out, "plans", f))
                for f in plans]
    plan_seconds = time.time() - t0
    for fmt in filter(None, a.uniform.split(",")):
        path = os.path.join(a.out, "plans", "uniform-" + fmt + ".json")
        json.dump(uniform_plan(measurement, fmt), open(path, "w"), indent=1)
        jobs.append(("uniform", fmt, path))
    results = []
    for kind, label, path in jobs:
        p = json.load(open(path))
        qdir = os.path.join(a.out, "q-" + label)
        t = time.time()
        run([q, "quantize", a.model, "--plan", path, "-o", qdir, "--force"] + common)
        quant_seconds = time.time() - t
        e = json.loads(run([q, "eval", qdir, "--ref", a.model, "--text", a.text, "--max-tokens",
                            str(a.eval_tokens), "--json", "-t", a.threads]))
        results.append({"kind": kind, "label": label, "bpw": p["budget"]["bits_per_weight"],
                        "bytes": p["budget"]["used_bytes"],
                        "file_bytes": os.path.getsize(os.path.join(qdir, "model.safetensors")),
                        "predicted_kld": p["predicted_kld"], "kld_mean": e["kld_mean"],
                        "ppl": e["ppl"], "ref_ppl": e["ref_ppl"], "top1": e["top1_agreement"],
                        "tokens": e["tokens"], "quantize_seconds": quant_seconds})
        json.dump({"model": a.model, "measurement_seconds": measurement["seconds"],
                   "plan_seconds": plan_seconds, "results": results},
                  open(os.path.join(a.out, "results.json"), "w"), indent=1)
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report(results, measurement)


def report(results, measurement):
    print("| kind | budget / format | bpw | predicted KLD | measured KLD | PPL | top-1 |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: r["bpw"]):
        print(f"| {r['kind']} | {r['label']} | {r['bpw']:.3f} | {r['predicted_kld']:.5f} | "
              f"{r['kld_mean']:.5f} | {r['ppl']:.4f} | {100 * r['top1']:.2f}% |")
    planned = sorted((r for r in results if r["kind"] == "plan"), key=lambda r: r["bpw"])
    if len(planned) >= 2:
        rho = spearman([r["predicted_kld"] for r in planned], [r["kld_mean"] for r in planned])
        print(f"\nSpearman(predicted, measured KLD) over {len(planned)} plans: {rho:.4f}")
        allr = results
        rho_all = spearman([r["predicted_kld"] for r in allr], [r["kld_mean"] for r in allr])
        print(f"Spearman over all {len(allr)} points (plans and uniform): {rho_all:.4f}")
        mono = all(b["kld_mean"] < a["kld_mean"] for a, b in zip(planned, planned[1:]))
        print(f"measured KLD falls monotonically with the budget: {mono}")
    uniform = [r for r in results if r["kind"] == "uniform"]
    wins = comparable = 0
    for r in planned:
        bigger = [u for u in uniform if u["bpw"] >= r["bpw"]]
        if not bigger:
            continue
        comparable += 1
        best = min(bigger, key=lambda u: u["kld_mean"])
        wins += r["kld_mean"] < best["kld_mean"]
    if comparable:
        print(f"planned mix beats the best uniform format of equal or larger size: {wins} of "
              f"{comparable} budgets")
    print(f"measurement: {measurement['seconds']:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        d = json.load(open(sys.argv[2]))
        report(d["results"], {"seconds": d["measurement_seconds"]})
    else:
        main()
