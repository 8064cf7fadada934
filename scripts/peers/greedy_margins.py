#!/usr/bin/env python3
"""Why vLLM's greedy text leaves qforge's on the quantized checkpoints: the logit margins there.

vLLM's CPU kernels run the W4A16/W8A8 checkpoints with bf16 activations, qforge in float32. For
each checkpoint and prompt of check_vllm.py this generates 16 greedy tokens in vLLM (bf16, top-5
logprobs per step), then has qforge score exactly that sequence (`qforge eval --dump-logits` on
prompt + vLLM's text, token ids checked equal) and reports, per generated position:
  - qforge's margin: its top-1 logit minus its top-2 (float32);
  - where qforge's top-1 is not vLLM's token (the first such position is where the greedy texts
    part; later ones are on vLLM's continuation): qforge's gap to vLLM's token and vLLM's gap (from its logprobs) to qforge's token;
  - the bf16-vs-float32 noise: |vLLM's logprob gap - qforge's logit gap| between the same two
    tokens at the positions where both pick the same token.
A divergence is a near-tie when both gaps are below that noise. Prints one JSON line per
checkpoint. Usage: greedy_margins.py [WORK] [variant ...]   (default w4a16 w8a8 of both models,
the checkpoints of scripts/peers/quantize.sh in WORK = ~/.cache/qforge/peers-work)
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
QFORGE = os.environ.get("QFORGE", str(ROOT / "build/release/qforge"))
WORK = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    pathlib.Path.home() / ".cache/qforge/peers-work")
ONLY = set(sys.argv[2:]) or {"w4a16", "w8a8"}
PROMPTS = ["The old man said", "Once upon a time", "It was the best of times,",
           "In the beginning God created", "Call me Ishmael."]
N = 16
TOPK = 5


def qforge_logits(path, text):
    import numpy as np
    from safetensors.numpy import load_file
    with tempfile.TemporaryDirectory() as d:
        t = pathlib.Path(d, "t.txt")
        t.write_text(text, encoding="utf-8")
        out = pathlib.Path(d, "l.safetensors")
        subprocess.run([QFORGE, "eval", str(path), "--text", str(t), "--dump-logits", str(out),
                        "-t", "2"], check=True, capture_output=True)
        f = load_file(str(out))
        return f["tokens"].astype(np.int64), f["logits"]


def check(path):
    import numpy as np
    from vllm import LLM, SamplingParams
    llm = LLM(model=str(path), dtype="bfloat16", max_model_len=512, enforce_eager=True, seed=0,
              gpu_memory_utilization=0.1)
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=N, logprobs=TOPK))
    r = {"path": str(path), "prompts": []}
    noise, agree_margins = [], []
    for prompt, o in zip(PROMPTS, outs):
        c = o.outputs[0]
        ids = list(o.prompt_token_ids) + list(c.token_ids)
        tokens, logits = qforge_logits(path, prompt + c.text)
        p = {"prompt": prompt, "vllm": c.text}
        if list(tokens) != ids[:len(tokens)] or len(tokens) < len(ids):
            p["error"] = "qforge's tokenization of prompt + vLLM's text differs from vLLM's ids"
            r["prompts"].append(p)
            continue
        diffs = []
        for j, tv in enumerate(c.token_ids):
            row = logits[len(o.prompt_token_ids) - 1 + j]
            top2 = np.argsort(row)[-2:][::-1]
            q1, q2 = int(top2[0]), int(top2[1])
            margin = float(row[q1] - row[q2])
            lp = {k: v.logprob for k, v in c.logprobs[j].items()}
            if q1 == tv:
                agree_margins.append(margin)
                if q2 in lp:  # the same two tokens' gap in vLLM (bf16) and qforge (f32)
                    noise.append(abs((lp[tv] - lp[q2]) - margin))
            else:
                diffs.append({"position": j, "qforge_token": q1, "vllm_token": int(tv),
                         "qforge_gap": float(row[q1] - row[tv]),
                         "vllm_gap": lp[tv] - lp[q1] if q1 in lp else None,
                         "qforge_margin_top2": margin})
        p["differences"] = diffs  # the first is where `qforge run --temp 0` parts from vLLM
        r["prompts"].append(p)
    r["noise_median"] = float(np.median(noise)) if noise else None
    r["noise_max"] = float(np.max(noise)) if noise else None
    r["agreeing_positions"] = len(agree_margins)
    r["agreeing_margin_min"] = float(np.min(agree_margins)) if agree_margins else None
    r["agreeing_margin_median"] = float(np.median(agree_margins)) if agree_margins else None
    return r


def main():
    for model in ("llama-sp-58m", "qwen-bpe-31m"):
        for variant in ("w4a16", "w8a8"):
            path = WORK / model / variant
            if variant not in ONLY or not path.is_dir():
                continue
            env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0")
            out = subprocess.run([sys.executable, __file__, "--one", str(path)], env=env,
                                 capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            r = json.loads(line[-1]) if line else {"path": str(path), "crash": out.stderr[-2000:]}
            r.update(model=model, variant=variant)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(check(pathlib.Path(sys.argv[2]))))
        sys.exit(0)
    main()
