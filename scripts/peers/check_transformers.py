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
W8A8 also rounds every linear's input to int8 per token, and there float32 noise that moves one
value across a rounding boundary changes it by a whole step, which the next layers amplify: the
model is chaotic at float32 resolution (measured: scaling the inputs by 1 + 1e-6 moves the logits
by as much as qforge and transformers differ). So W8A8 is checked against that floor, measured
here each time: mean |dlogit| <= 2 x the mean change from the 1e-6 perturbation, top-1 >= 95%.
Usage: check_transformers.py [WORK]   exit 0 all agree, 1 a mismatch, 77 nothing to check.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

RTOL = 1e-5
# Refusals of the peer itself, quoted in docs/RESULTS.md: reported, not failed.
# transformers 5.19 + compressed-tensors 0.17 decompress NVFP4 weights to bf16 in a float32 model.
PEER_REFUSES = {"nvfp4": "the same dtype"}
PERTURB = [0.0]
WORK = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/qforge-peers")


def int8_per_token(x):
    """vLLM's dynamic per-token int8 (dynamic_scaled_int8_quant): scale = absmax / 127, round
    half to even. compressed-tensors' own fake quantization divides by 127.5 instead, a different
    grid, so it is not the reference for what a W8A8 checkpoint computes when served."""
    s = x.abs().amax(-1, keepdim=True) / 127
    return torch.where(s > 0, torch.clamp(torch.round(x / s), -128, 127) * s, x)


def fp8_per_token(x):
    """The same for e4m3 activations: scale = absmax / 448, rounded to e4m3 (nearest even)."""
    s = x.abs().amax(-1, keepdim=True) / 448
    return torch.where(s > 0, (x / s).to(torch.float8_e4m3fn).float() * s, x)


def simulate_input_activations(model):
    """transformers decompresses a W8A8 checkpoint and runs its linears on unquantized inputs:
    pre-hooks quantize each input whose quantization_scheme asks for dynamic per-token int8 or
    fp8 e4m3 (scaled by 1 + PERTURB[0] first, to measure the float32 noise floor). Returns how
    many."""
    hooked = 0
    for m in model.modules():
        a = getattr(getattr(m, "quantization_scheme", None), "input_activations", None)
        if a is not None:
            assert a.num_bits == 8 and a.type in ("int", "float") and a.dynamic and \
                a.strategy == "token", a
            q = int8_per_token if a.type == "int" else fp8_per_token
            m.register_forward_pre_hook(
                lambda mod, inp, q=q: (q(inp[0] * (1 + PERTURB[0])), *inp[1:]))
            hooked += 1
    return hooked


def compare(model_dir, dump):
    ref = load_file(dump)
    tokens, want = ref["tokens"].long(), ref["logits"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    quantized_inputs = simulate_input_activations(model)
    with torch.no_grad():
        got = model(input_ids=tokens[None]).logits[0].float()
    d = (got - want).abs()
    floor = None
    if quantized_inputs:
        PERTURB[0] = 1e-6
        with torch.no_grad():
            floor = (model(input_ids=tokens[None]).logits[0].float() - got).abs().mean().item()
        PERTURB[0] = 0.0
    return {
        "floor": floor,
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
            known = PEER_REFUSES.get(variant, "\0") in str(e)
            print(f"{'PEER-REFUSES' if known else 'FAIL'} {model} {variant}: {type(e).__name__}: {e}")
            failed |= not known
            continue
        if r["floor"] is None:
            tol = RTOL * r["max_logit"]
            ok = r["max_abs"] <= tol
        else:
            tol = 2 * r["floor"]
            ok = r["mean_abs"] <= tol and r["top1"] >= 0.95
        failed |= not ok
        r.update(model=model, variant=variant, tol=tol, ok=ok)
        rows.append(r)
        print(f"{'ok  ' if ok else 'FAIL'} {model:13} {variant:6} max|d| {r['max_abs']:.2e} "
              f"mean|d| {r['mean_abs']:.2e} tol {tol:.2e} ({'mean' if r['floor'] else 'max'}) top-1 {100 * r['top1']:.2f}%")
    if not rows and not failed:
        print(f"SKIP: no <model>/<variant>.logits.st under {WORK} (run scripts/peers/quantize.sh)")
        return 77
    print(json.dumps(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
