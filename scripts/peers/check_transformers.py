#!/usr/bin/env python3
"""transformers + compressed-tensors load qforge's checkpoints and compute qforge's logits.

For each <model>/<variant> that scripts/peers/quantize.sh wrote under WORK, loads the directory
with AutoModelForCausalLM.from_pretrained in float32, runs the 512 tokens of
<variant>.logits.st (qforge eval --dump-logits) and compares the logits with qforge's.

Tolerance: both sides decode the same stored codes and scales exactly in float32, so what is
left is float32 rounding of two different summation orders, exactly as for the unquantized
original (variant bf16, checked the same way). It is bounded relative to the logits' scale:
max |dlogit| <= RTOL * max |logit|, RTOL = 1e-5 (~100 float32 ulps of the largest logit; the
original's measured difference is 1.6e-6 of it, docs/RESULTS.md). A decoding error of even one
code in a 512-column row would move logits by far more.
W8A8 also rounds every activation to int8 per token, where a value that float32 noise moves
across a rounding boundary changes by a whole step; that is checked by the mean instead (mean
|dlogit| <= RTOL * max |logit|) plus top-1 agreement >= 99%.
Usage: check_transformers.py [WORK]   exit 0 all agree, 1 a mismatch, 77 nothing to check.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

RTOL = 1e-5
WORK = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/qforge-peers")


def compare(model_dir, dump):
    ref = load_file(dump)
    tokens, want = ref["tokens"].long(), ref["logits"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        got = model(input_ids=tokens[None]).logits[0].float()
    d = (got - want).abs()
    return {
        "max_abs": d.max().item(),
        "mean_abs": d.mean().item(),
        "max_logit": want.abs().max().item(),
        "top1": (got.argmax(-1) == want.argmax(-1)).float().mean().item(),
    }


def main():
    torch.set_num_threads(2)
    rows, failed = [], False
    for dump in sorted(WORK.glob("*/*.logits.st")):
        model, variant = dump.parent.name, dump.name.split(".")[0]
        model_dir = dump.parent / variant
        try:
            r = compare(model_dir, dump)
        except Exception as e:  # a checkpoint transformers refuses is a failure to report
            print(f"FAIL {model} {variant}: {type(e).__name__}: {e}")
            failed = True
            continue
        tol = RTOL * r["max_logit"]
        ok = (r["mean_abs"] <= tol and r["top1"] >= 0.99) if variant == "w8a8" else r["max_abs"] <= tol
        failed |= not ok
        r.update(model=model, variant=variant, tol=tol, ok=ok)
        rows.append(r)
        print(f"{'ok  ' if ok else 'FAIL'} {model:13} {variant:6} max|d| {r['max_abs']:.2e} "
              f"mean|d| {r['mean_abs']:.2e} tol {tol:.2e} top-1 {100 * r['top1']:.2f}%")
    if not rows and not failed:
        print(f"SKIP: no <model>/<variant>.logits.st under {WORK} (run scripts/peers/quantize.sh)")
        return 77
    print(json.dumps(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
