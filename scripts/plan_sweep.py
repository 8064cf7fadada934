#!/usr/bin/env python3
"""Measured frontier of `qforge plan` against uniform formats, at equal size.

One sensitivity measurement (`qforge plan`, saved and reused), then for every uniform format F of
--uniform: F as a plan over the same measurement (every linear, the embedding and the head in F:
the same bytes accounting as the plans) and a planned mix whose budget is F's exact size, so each
plan is compared with a uniform format of equal size. --between adds budgets between them (for the
rank correlation and the curve). Each point is quantized with `qforge quantize --plan` (GPTQ on the
linears; --rtn formats also uniformly by RTN); then all are evaluated together with `qforge eval
POINT... --ref ORIGINAL` (one pass: the original runs once per window for all of them).
--llamacpp LABEL=FILE.gguf adds llama.cpp's own files (llama-quantize with an imatrix, e.g. kept
by `KEEP=1 scripts/gguf_quality.sh`), evaluated the same way, at the bits of their matrices.
The first uniform GPTQ quantization runs right after the measurement, so the two times the cost
criterion compares (measurement vs one GPTQ run) are taken side by side.

Writes OUT/results.json (resumable: points already there are not rerun) and prints the tables:

  scripts/plan_sweep.py --qforge build/release/qforge --model ../shared/models/llama-sp-58m \
      --calib ../shared/data/calib.txt --text ../shared/data/valid.txt --eval-tokens 65536 \
      --calib-tokens 16384 --uniform int4-g128,int3-g128,int8-channel --rtn int4-g128 --out OUT
  scripts/plan_sweep.py --report OUT/results.json
  scripts/plan_sweep.py --reeval OUT/results.json --qforge Q --text VALID --eval-tokens 65536 \
      -o OUT/results-65536.json      # the same quantized files on more tokens
  scripts/plan_sweep.py --repredict MEASUREMENT.json OUT/results.json   # uniform points, re-predicted
  scripts/plan_sweep.py --same-tensors A/model.safetensors B/model.safetensors  # exit 0: same

--uniform-from OLD_OUT takes the uniform files (and, on the same tokens, their evaluations) of an
earlier sweep instead of quantizing them again: a uniform format's file does not depend on the
measurement, but it does on the binary, so check first that this binary writes the same tensors.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


# Models per `qforge eval` pass: each holds its weights (mapped) and a KV cache; the logits of a
# window are shared. 16 quantized llama-sp-58m files take about 1 GiB together.
EVAL_GROUP = 16


def chunks(items, n):
    return [items[i:i + n] for i in range(0, len(items), n)]


def evaluate(q, paths, model, text, eval_tokens, threads):
    """`qforge eval PATH... --ref MODEL --json` (one line per model, in order)."""
    out = run([q, "eval", *paths, "--ref", model, "--text", text, "--max-tokens",
               str(eval_tokens), "--json", "-t", threads])
    evals = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(evals) != len(paths):
        sys.exit(f"qforge eval printed {len(evals)} results for {len(paths)} models")
    return evals


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


def weight_count(measurement):
    return sum(t["shape"][0] * t["shape"][1] for t in measurement["tensors"])


def uniform_plan(measurement, fmt):
    """Every tensor in `fmt` (kept where fmt cannot take its rows), as a plan file's JSON."""
    tensors, used, kld = {}, 0, 0.0
    for t in measurement["tensors"]:
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
                       "bits_per_weight": 8.0 * used / weight_count(measurement)},
            "tensors": tensors}


def smallest_step(measurement):
    """The smallest change in bytes of switching one tensor's format (kept included)."""
    step = None
    for t in measurement["tensors"]:
        sizes = sorted({c["bytes"] for c in t["candidates"]} | {t["kept_bytes"]})
        for a, b in zip(sizes, sizes[1:]):
            step = b - a if step is None else min(step, b - a)
    return step


def safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def safetensors_bytes(path):
    """Bytes of every tensor in a safetensors file, by name (read from its header)."""
    header, _ = safetensors_header(path)
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items()
            if k != "__metadata__"}


def same_tensors(a, b):
    """Whether two quantized models hold the same tensors byte for byte (the metadata, which
    records the plan and its predicted KLD, aside): the check --uniform-from asks for."""
    (ha, start_a), (hb, start_b) = safetensors_header(a), safetensors_header(b)
    ha.pop("__metadata__", None)
    hb.pop("__metadata__", None)
    if ha.keys() != hb.keys():
        print(f"the tensor names differ: {sorted(set(ha) ^ set(hb))[:8]}")
        return False
    differ = []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for name in sorted(ha):
            ta, tb = ha[name], hb[name]
            fa.seek(start_a + ta["data_offsets"][0])
            fb.seek(start_b + tb["data_offsets"][0])
            size = ta["data_offsets"][1] - ta["data_offsets"][0]
            if (ta["dtype"], ta["shape"]) != (tb["dtype"], tb["shape"]) or \
                    fa.read(size) != fb.read(tb["data_offsets"][1] - tb["data_offsets"][0]):
                differ.append(name)
    print(f"{len(ha)} tensors, {len(differ)} differ" + (f", e.g. {differ[:4]}" if differ else ""))
    return not differ


def quantized_bytes(qdir, measurement):
    """Bytes the quantizable tensors take in the written file: everything but the other tensors
    (norms, biases) the measurement counted as stored, and the 16-byte `weight_shape` entries of
    the compressed-tensors layout (metadata, like the header: bounded by --size, not by --bpw)."""
    sizes = safetensors_bytes(os.path.join(qdir, "model.safetensors"))
    return sum(v for k, v in sizes.items() if not k.endswith(".weight_shape")) - \
        measurement["other_bytes"]


def gguf_matrix_bytes(q, path):
    """Bytes of a GGUF file's matrices (packed block tensors and any of two dimensions), from
    `qforge info`'s tensor table (name, dtype, shape, bytes)."""
    total = 0
    for line in run([q, "info", path]).splitlines():
        f = line.split()
        if len(f) < 4 or not f[-1].isdigit():
            continue
        if f[0].endswith(".packed") or (f[-3].startswith("[") and f[-3].endswith(",")):
            total += int(f[-1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--eval-tokens", type=int, default=65536)
    ap.add_argument("--calib-tokens", type=int, default=65536)
    ap.add_argument("--formats", default="int", help="the plans' candidate formats")
    ap.add_argument("--uniform", required=True,
                    help="uniform formats (GPTQ); a plan is made at each one's exact size. The "
                         "first one's quantization is the GPTQ run the measurement is timed against")
    ap.add_argument("--rtn", default="", help="uniform formats also quantized by RTN")
    ap.add_argument("--between", default="", help="more budgets, bits per weight")
    ap.add_argument("--llamacpp", default="",
                    help="LABEL=FILE.gguf,...: llama.cpp's quantizations, evaluated as points")
    ap.add_argument("--plans-first", action="store_true",
                    help="run every plan before the uniform formats (more budgets when time is "
                         "short; the uniform anchors follow)")
    ap.add_argument("--uniform-from", default="",
                    help="DIR,...: earlier sweeps' --out folders. A uniform GPTQ point whose "
                         "q-uniform-F folder is in one of them is taken from that file, not "
                         "quantized again (its bytes do not depend on the measurement; check that "
                         "the binary still writes the same bytes before relying on this), and "
                         "that sweep's evaluation of it if it was on the same number of tokens")
    ap.add_argument("--llamacpp-evals-from", default="",
                    help="DIR,...: earlier sweeps whose evaluations of the --llamacpp files (same "
                         "label and size) on the same number of tokens are taken")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    plans_dir = os.path.join(a.out, "plans")
    os.makedirs(plans_dir, exist_ok=True)
    q = a.qforge
    common = ["--calib", a.calib, "--calib-tokens", str(a.calib_tokens), "-t", a.threads]
    results_path = os.path.join(a.out, "results.json")
    state = json.load(open(results_path)) if os.path.exists(results_path) else {
        "model": a.model, "eval_tokens": a.eval_tokens, "calib_tokens": a.calib_tokens,
        "formats": a.formats, "results": []}
    done = {(r["kind"], r["label"]) for r in state["results"]}

    def save():
        json.dump(state, open(results_path, "w"), indent=1)

    meas_path = os.path.join(plans_dir, "measurement.json")
    uniform = list(filter(None, a.uniform.split(",")))
    if not os.path.exists(meas_path):
        # Measure (nothing else runs in between), then one GPTQ quantization of the same model.
        t = time.time()
        run([q, "plan", a.model, "--formats", a.formats, "--bpw", "4", "--measurement",
             meas_path, "-o", os.path.join(plans_dir, "first.json")] + common)
        state["measurement_wall_seconds"] = time.time() - t
    measurement = json.load(open(meas_path))
    state["measurement_seconds"] = measurement["seconds"]
    weights = weight_count(measurement)
    state["smallest_step_bytes"] = smallest_step(measurement)
    for r in state["results"]:  # recount what earlier runs wrote (the count's rule may change)
        if r["kind"] == "llamacpp":
            continue
        qdir = os.path.join(a.out, "q-" + r["kind"] + "-" + r["label"])
        if os.path.exists(qdir):
            r["written_bytes"] = quantized_bytes(qdir, measurement)
    save()

    def plan_at(label, bpw_arg):
        path = os.path.join(plans_dir, "plan-" + label + ".json")
        if not os.path.exists(path):
            run([q, "plan", a.model, "--formats", a.formats, "--bpw", bpw_arg, "--measurement",
                 meas_path, "-o", path] + common)
        return path

    jobs = []  # (kind, label, plan path, method, compare-with)
    for fmt in uniform:
        path = os.path.join(plans_dir, "uniform-" + fmt + ".json")
        up = uniform_plan(measurement, fmt)
        json.dump(up, open(path, "w"), indent=1)
        jobs.append(("uniform", fmt, path, "gptq"))
        # The budget in bits per weight that floor(B * weights / 8) turns into F's exact bytes.
        bpw = (8 * up["budget"]["used_bytes"] + 4) / weights
        jobs.append(("plan", "at-" + fmt, ("at-" + fmt, repr(bpw)), "gptq"))
    for fmt in filter(None, a.rtn.split(",")):
        jobs.append(("uniform-rtn", fmt, os.path.join(plans_dir, "uniform-" + fmt + ".json"),
                     "rtn"))
    for b in filter(None, a.between.split(",")):
        jobs.append(("plan", "bpw" + b, ("bpw" + b, b), "gptq"))
    if a.plans_first:
        jobs.sort(key=lambda j: j[0] != "plan")  # stable: each kind keeps its order

    def llamacpp_point(label, path, e):
        qbytes = gguf_matrix_bytes(q, path)
        return {
            "kind": "llamacpp", "label": label, "method": "llamacpp",
            "bpw": 8.0 * qbytes / weights, "max_bytes": qbytes, "bytes": qbytes,
            "written_bytes": qbytes, "file_bytes": os.path.getsize(path), "predicted_kld": 0.0,
            "kld_mean": e["kld_mean"], "ppl": e["ppl"], "ref_ppl": e["ref_ppl"],
            "top1": e["top1_agreement"], "tokens": e["tokens"], "formats": []}

    to_eval = []  # (path, point(evaluation)): evaluated together after the quantizations
    for item in filter(None, a.llamacpp.split(",")):
        label, path = item.split("=", 1)
        if ("llamacpp", label) in done:
            continue
        e = earlier_llamacpp_eval(a.llamacpp_evals_from, a.model, label, path, a.eval_tokens)
        if e:
            state["results"].append(llamacpp_point(label, path, e))
            save()
        else:
            to_eval.append((path, lambda e, label=label, path=path: llamacpp_point(label, path, e)))

    # Quantize every point first, then evaluate them all in one `qforge eval` pass, which runs the
    # reference once per window for all of them (N + 1 forward passes instead of 2N).
    pending = []  # (kind, label, method, plan, qdir, quantize seconds, earlier folder)
    for kind, label, path, method in jobs:
        if (kind, label) in done:
            continue
        if isinstance(path, tuple):
            path = plan_at(*path)
        p = json.load(open(path))
        qdir = os.path.join(a.out, "q-" + kind + "-" + label)
        earlier = earlier_file(a.uniform_from, kind, label)
        seconds_path = os.path.join(qdir, "quantize-seconds.json")
        if earlier:
            if not os.path.lexists(qdir):
                os.symlink(earlier, qdir)  # so --reeval and the recount find it beside the rest
            quant_seconds = None
        elif os.path.exists(seconds_path):  # quantized by an interrupted run, not yet evaluated
            quant_seconds = json.load(open(seconds_path))
        else:
            t = time.time()
            run([q, "quantize", a.model, "--plan", path, "--method", method, "-o", qdir,
                 "--force"] + common)
            quant_seconds = time.time() - t
            json.dump(quant_seconds, open(seconds_path, "w"))
        if kind == "uniform" and quant_seconds and "gptq_seconds" not in state:
            state["gptq_seconds"] = quant_seconds  # the run right after the measurement
            save()
        pending.append((kind, label, method, p, qdir, quant_seconds, earlier))

    def point(kind, label, method, p, qdir, quant_seconds, earlier, e, evaluated_in):
        return {
            "kind": kind, "label": label, "method": method,
            "bpw": p["budget"]["bits_per_weight"], "max_bytes": p["budget"]["max_bytes"],
            "bytes": p["budget"]["used_bytes"], "written_bytes": quantized_bytes(qdir, measurement),
            "file_bytes": os.path.getsize(os.path.join(qdir, "model.safetensors")),
            "predicted_kld": p["predicted_kld"], "kld_mean": e["kld_mean"], "ppl": e["ppl"],
            "ref_ppl": e["ref_ppl"], "top1": e["top1_agreement"], "tokens": e["tokens"],
            "quantize_seconds": quant_seconds, "quantized_in": earlier or qdir,
            "evaluated_in": evaluated_in,
            "formats": sorted({t["format"] for t in p["tensors"].values()})}

    # The same file on the same tokens gives the same evaluation: take an earlier sweep's.
    for job in pending:
        kind, label, earlier = job[0], job[1], job[6]
        e = earlier and earlier_eval(os.path.dirname(earlier), a.model, kind, label,
                                     a.eval_tokens)
        if e:
            state["results"].append(point(*job, e, os.path.dirname(earlier)))
            save()
        else:
            to_eval.append((job[4], lambda e, job=job: point(*job, e, a.out)))
    for group in chunks(to_eval, EVAL_GROUP):
        evals = evaluate(q, [path for path, _ in group], a.model, a.text, a.eval_tokens,
                         a.threads)
        for (_, make_point), e in zip(group, evals):
            state["results"].append(make_point(e))
            print(json.dumps(state["results"][-1]), file=sys.stderr, flush=True)
        save()
    report(state)


def earlier_file(dirs, kind, label):
    """The folder of a uniform GPTQ point an earlier sweep wrote (--uniform-from), or None."""
    if kind != "uniform":
        return None
    for d in filter(None, dirs.split(",")):
        qdir = os.path.realpath(os.path.join(d, "q-" + kind + "-" + label))
        if os.path.exists(os.path.join(qdir, "model.safetensors")):
            return qdir
    return None


def earlier_eval(sweep_dir, model, kind, label, eval_tokens, file_bytes=None):
    """The evaluation an earlier sweep in `sweep_dir` recorded for this point, as `qforge eval
    --json` would print it, if it evaluated the same model on the same number of tokens (and, for
    llama.cpp's files, a file of the same size)."""
    path = os.path.join(sweep_dir, "results.json")
    if not os.path.exists(path):
        return None
    s = json.load(open(path))
    if s["model"] != model or s["eval_tokens"] != eval_tokens:
        return None
    r = next((r for r in s["results"] if (r["kind"], r["label"]) == (kind, label) and
              file_bytes in (None, r.get("file_bytes"))), None)
    return r and {"kld_mean": r["kld_mean"], "ppl": r["ppl"], "ref_ppl": r["ref_ppl"],
                  "top1_agreement": r["top1"], "tokens": r["tokens"]}


def earlier_llamacpp_eval(dirs, model, label, path, eval_tokens):
    """A llama.cpp file's evaluation from an earlier sweep (--llamacpp-evals-from), or None."""
    for d in filter(None, dirs.split(",")):
        e = earlier_eval(d, model, "llamacpp", label, eval_tokens, os.path.getsize(path))
        if e:
            return e
    return None


def report(state):
    results = state["results"]
    print("| kind | budget / format | bpw | bytes (max) | predicted KLD | measured KLD | PPL | top-1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: (r["bpw"], r["kind"])):
        # The measurement predicts qforge's GPTQ quantizations; RTN and llama.cpp have none.
        pred = "—" if r["method"] != "gptq" else f"{r['predicted_kld']:.5f}"
        print(f"| {r['kind']} | {r['label']} | {r['bpw']:.4f} | {r['written_bytes']} "
              f"({r['max_bytes']}) | {pred} | {r['kld_mean']:.5f} | "
              f"{r['ppl']:.4f} | {100 * r['top1']:.2f}% |")
    tokens = sorted({r["tokens"] for r in results})
    print(f"\nscored tokens per point: {', '.join(map(str, tokens))}")
    step = state.get("smallest_step_bytes")
    planned = sorted((r for r in results if r["kind"] == "plan"), key=lambda r: r["bpw"])
    met = [r for r in planned if r["written_bytes"] <= r["max_bytes"] and
           (step is None or r["max_bytes"] - r["written_bytes"] < step)]
    print(f"budgets met (written quantized bytes <= budget, less than one smallest format step "
          f"({step} bytes) under it): {len(met)} of {len(planned)}")
    if len(planned) >= 2:
        rho = spearman([r["predicted_kld"] for r in planned], [r["kld_mean"] for r in planned])
        print(f"Spearman(predicted, measured KLD) over {len(planned)} plans: {rho:.4f}")
        gp = [r for r in results if r["method"] == "gptq"]
        rho_all = spearman([r["predicted_kld"] for r in gp], [r["kld_mean"] for r in gp])
        print(f"Spearman over all {len(gp)} GPTQ points (plans and uniform): {rho_all:.4f}")
        mono = all(b["kld_mean"] < a["kld_mean"] for a, b in zip(planned, planned[1:]))
        print(f"measured KLD of the plans falls monotonically with the budget: {mono}")
    # Each plan against the uniform formats (GPTQ or RTN) of equal or larger size, nearest first:
    # the smallest uniform size >= the plan's bytes, and the best format of that size.
    uni = [r for r in results if r["kind"].startswith("uniform")]
    wins = comparable = 0
    for r in planned:
        bigger = [u for u in uni if u["bytes"] >= r["bytes"]]
        if not bigger:
            continue
        nearest = min(u["bytes"] for u in bigger)
        best = min((u for u in bigger if u["bytes"] == nearest), key=lambda u: u["kld_mean"])
        comparable += 1
        win = r["kld_mean"] < best["kld_mean"]
        wins += win
        print(f"  plan {r['label']} ({r['bpw']:.4f} bpw) {r['kld_mean']:.5f} vs {best['kind']} "
              f"{best['label']} ({best['bpw']:.4f} bpw) {best['kld_mean']:.5f}: "
              f"{r['kld_mean'] / best['kld_mean']:.3f}x {'win' if win else 'LOSS'}")
    if comparable:
        print(f"planned mix beats the nearest uniform format of equal or larger size: {wins} of "
              f"{comparable} budgets ({100 * wins / comparable:.0f}%)")
    ms, gs = state.get("measurement_wall_seconds"), state.get("gptq_seconds")
    if ms and gs:
        print(f"measurement (qforge plan, wall) {ms:.1f} s, one GPTQ quantization (qforge "
              f"quantize, wall) right after it {gs:.1f} s: ratio {ms / gs:.2f}")


def reeval(argv):
    """Evaluates the points of a sweep again on another number of tokens, from the files it wrote
    (nothing is quantized again); resumable like the sweep. Kinds and labels as in the report."""
    ap = argparse.ArgumentParser(prog="plan_sweep.py --reeval")
    ap.add_argument("results", help="the sweep's results.json (its q-* folders beside it)")
    ap.add_argument("--qforge", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--eval-tokens", type=int, required=True)
    ap.add_argument("--kinds", default="plan,uniform", help="which kinds of points")
    ap.add_argument("--llamacpp", default="", help="LABEL=FILE.gguf,... for llamacpp points")
    ap.add_argument("--threads", default="2")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    src = json.load(open(a.results))
    out = json.load(open(a.output)) if os.path.exists(a.output) else dict(
        src, eval_tokens=a.eval_tokens, results=[])
    done = {(r["kind"], r["label"]) for r in out["results"]}
    ggufs = dict(item.split("=", 1) for item in filter(None, a.llamacpp.split(",")))
    kinds = a.kinds.split(",")
    # Smallest first: the low-bit points, where the plans and the uniform formats differ most.
    todo = []
    for r in sorted(src["results"], key=lambda r: (r["bpw"], r["kind"])):
        if r["kind"] not in kinds or (r["kind"], r["label"]) in done:
            continue
        path = ggufs.get(r["label"]) if r["kind"] == "llamacpp" else os.path.join(
            os.path.dirname(a.results), "q-" + r["kind"] + "-" + r["label"])
        if not path or not os.path.exists(path):
            print(f"skipping {r['kind']} {r['label']}: no {path}", file=sys.stderr)
            continue
        todo.append((r, path))
    for group in chunks(todo, EVAL_GROUP):
        evals = evaluate(a.qforge, [path for _, path in group], src["model"], a.text,
                         a.eval_tokens, a.threads)
        for (r, _), e in zip(group, evals):
            out["results"].append(dict(r, kld_mean=e["kld_mean"], ppl=e["ppl"],
                                        ref_ppl=e["ref_ppl"], top1=e["top1_agreement"],
                                        tokens=e["tokens"]))
        json.dump(out, open(a.output, "w"), indent=1)
    report(out)


def repredict(measurement_path, results_path):
    """The uniform GPTQ points of a sweep predicted again from another measurement (their files do
    not depend on the measurement): predicted before, predicted now, measured."""
    m = json.load(open(measurement_path))
    print("| uniform format | bpw | predicted (sweep's measurement) | predicted (this one) | "
          "measured KLD | measured / predicted now |")
    print("|---|---|---|---|---|---|")
    for r in sorted(json.load(open(results_path))["results"], key=lambda r: r["bpw"]):
        if r["kind"] != "uniform":
            continue
        now = uniform_plan(m, r["label"])["predicted_kld"]
        print(f"| {r['label']} | {r['bpw']:.4f} | {r['predicted_kld']:.5f} | {now:.5f} | "
              f"{r['kld_mean']:.5f} | {r['kld_mean'] / now:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        report(json.load(open(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--repredict":
        repredict(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--same-tensors":
        sys.exit(0 if same_tensors(sys.argv[2], sys.argv[3]) else 1)
    elif len(sys.argv) > 1 and sys.argv[1] == "--reeval":
        reeval(sys.argv[2:])
    else:
        main()
