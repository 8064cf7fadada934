#!/usr/bin/env python3
"""vLLM (CPU build) serves qforge's checkpoints as qforge runs them.

For each <model>/<variant> that scripts/peers/quantize.sh wrote under WORK (and the original,
variant bf16): loads it in vllm.LLM and checks
  - greedy generation: 16 tokens for each of 5 prompts, the same text as `qforge run --temp 0`
    (required for the original, which vLLM runs in float32; reported for the quantized ones,
    whose CPU kernels take bf16 activations only);
  - perplexity from vLLM's prompt logprobs on the first TOKENS tokens of valid.txt, windows of
    512 + 1 tokens overlapping by one (qforge's protocol), within 1% of `qforge eval`.
A checkpoint vLLM refuses is reported with vLLM's own message. Prints one JSON line per result.
Usage: check_vllm.py [WORK] [variant ...]   exit 0 all agree, 1 otherwise, 77 nothing to check.
"""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
QFORGE = os.environ.get("QFORGE", str(ROOT / "build/release/qforge"))
SHARED = pathlib.Path(os.environ.get("SHARED", ROOT / ".." / "shared"))
WORK = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/qforge-peers")
ONLY = set(sys.argv[2:])
TOKENS = int(os.environ.get("PPL_TOKENS", "4097"))  # 8 windows of 512 predicted tokens
CTX = 512
# vLLM 0.32's CPU backend has no kernel for these (quoted in docs/RESULTS.md): reported, not failed.
PEER_REFUSES = {"fp8": "Failed to find a kernel that can implement the ScaledMM",
                "nvfp4": "Marlin FP4 not available"}
PROMPTS = ["The old man said", "Once upon a time", "It was the best of times,",
           "In the beginning God created", "Call me Ishmael."]


def qforge(*args):
    return subprocess.run([QFORGE, *args], check=True, capture_output=True, text=True).stdout


def check(model, variant, path):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    r = {"model": model, "variant": variant}
    try:
        # vLLM's CPU kernels for quantized linears take bf16 activations only ("cpu_gemm_wna16"
        # not implemented for 'Float'); the original runs in float32 like qforge.
        llm = LLM(model=str(path), dtype="float32" if variant == "bf16" else "bfloat16",
                  max_model_len=CTX + 8, enforce_eager=True, seed=0,
                  gpu_memory_utilization=0.1)  # on CPU: the share of RAM for the KV cache
    except Exception as e:  # vLLM's refusal, quoted in RESULTS.md
        r.update(ok=False, load_error=f"{type(e).__name__}: {e}"[:2000])
        r["peer_refuses"] = PEER_REFUSES.get(variant, "\0") in str(e)
        return r
    greedy = SamplingParams(temperature=0, max_tokens=16)
    outs = llm.generate(PROMPTS, greedy)
    same = 0
    for p, o in zip(PROMPTS, outs):
        ours = qforge("run", str(path), "-p", p, "-n", "16", "--temp", "0", "-q")[len(p):].strip()
        theirs = o.outputs[0].text.strip()
        same += ours == theirs
        if ours != theirs:
            r.setdefault("differs", []).append({"prompt": p, "qforge": ours, "vllm": theirs})
    r["greedy_same"] = f"{same}/{len(PROMPTS)}"

    ours = json.loads(qforge("eval", str(path), "--text", str(SHARED / "data/valid.txt"),
                             "--max-tokens", str(TOKENS), "--ctx", str(CTX), "--json"))
    tok = llm.get_tokenizer()
    ids = tok(open(SHARED / "data/valid.txt", encoding="utf-8").read())["input_ids"][:TOKENS]
    windows = [ids[s:s + CTX + 1] for s in range(0, len(ids) - 1, CTX)]
    outs = llm.generate([TokensPrompt(prompt_token_ids=w) for w in windows],
                        SamplingParams(max_tokens=1, prompt_logprobs=0))
    nll, n = 0.0, 0
    for w, o in zip(windows, outs):
        for t, lp in zip(w[1:], o.prompt_logprobs[1:]):
            nll -= lp[t].logprob
            n += 1
    import math
    r.update(vllm_ppl=math.exp(nll / n), qforge_ppl=ours["ppl"], tokens=n,
             qforge_tokens=ours["tokens"])
    r["ppl_rel_diff"] = r["vllm_ppl"] / r["qforge_ppl"] - 1
    # Greedy text must agree where vLLM computes in float32 like qforge (the original); with bf16
    # activations a near-tie can go the other way and the text diverge from there, so it is
    # reported for the quantized checkpoints, and their PPL must agree.
    r["ok"] = abs(r["ppl_rel_diff"]) <= 0.01 and n == ours["tokens"] and (
        variant != "bf16" or same == len(PROMPTS))
    return r


def main():
    results = []
    for model in ("llama-sp-58m", "qwen-bpe-31m"):
        for variant in ("bf16", "w4a16", "w8a8", "fp8", "fp8a8", "nvfp4"):
            path = WORK / model / variant
            if (ONLY and variant not in ONLY) or not path.is_dir():
                continue
            # One process per checkpoint: vLLM does not release a model's engine in-process.
            env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0")
            out = subprocess.run([sys.executable, __file__, "--one", model, variant, str(path)], env=env,
                                 capture_output=True, text=True)
            line = [l for l in out.stdout.splitlines() if l.startswith("{")]
            r = json.loads(line[-1]) if line else {"model": model, "variant": variant, "ok": False,
                                                   "crash": out.stderr[-2000:]}
            print(json.dumps(r), flush=True)
            results.append(r)
    if not results:
        print(f"SKIP: no checkpoints under {WORK} (run scripts/peers/quantize.sh)")
        return 77
    return 0 if all(r["ok"] or r.get("peer_refuses") for r in results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(check(sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4]))))
        sys.exit(0)
    sys.exit(main())
