#!/usr/bin/env python3
"""One peer quantization for compare.sh, run inside that peer's environment (setup.sh).

  peer_quantize.py ids SRC CALIB N SEQ > ids.json   the calibration tokens qforge uses: CALIB
      tokenized without BOS in the paragraph-aligned 64 KiB chunks of qforge's
      calibration_tokens(), the first N, as rows of SEQ
  peer_quantize.py METHOD SRC OUT IDS GROUP         quantize SRC into OUT on those rows
      METHOD: llmc-gptq (GPTQModifier W4A16), llmc-awq (AWQModifier W4A16), llmc-w8a8
      (SmoothQuantModifier 0.5 + GPTQModifier W8A8 int8), gptqmodel (4-bit GPTQ); all symmetric
      with groups of GROUP (the W8A8 weights per channel), lm_head kept, on 2 threads in float32.
      gptqmodel's own checkpoint format (qweight/qzeros/scales) has no compressed-tensors reading,
      so it is also exported dequantized as OUT-dense (F32), which qforge evaluates.
"""
import json
import os
import sys

import torch


def calibration_ids(src, calib, n, seq):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(src)
    data, ids, begin = open(calib, "rb").read(), [], 0  # qforge chunks bytes
    while begin < len(data) and len(ids) < n:
        end = min(len(data), begin + (64 << 10))
        if end < len(data):
            para = data.rfind(b"\n\n", 0, end + 2)
            if para > begin:
                end = para + 2
        ids += tok(data[begin:end].decode("utf-8"), add_special_tokens=False)["input_ids"]
        begin = end
    assert len(ids) >= n, f"calibration text too short: {len(ids)} tokens"
    return [ids[i:i + seq] for i in range(0, n - seq + 1, seq)]


def scheme(bits, group):
    w = {"num_bits": bits, "type": "int", "symmetric": True,
         "strategy": "group" if group else "channel", "group_size": group or None}
    a = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True}
    return {"group_0": {"targets": ["Linear"], "weights": w,
                        "input_activations": a if bits == 8 else None}}


def llmcompressor(method, src, out, rows, group):
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from llmcompressor.modifiers.quantization import GPTQModifier
    from llmcompressor.modifiers.smoothquant import SmoothQuantModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if not torch.cuda.is_available():
        # AWQModifier pins its cached activations for faster host-to-GPU copies; PyPI's torch is
        # the CUDA build, whose pin_memory() fails without a driver ("Found no NVIDIA driver on
        # your system"). There is no GPU to copy to here: pinning is skipped.
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(src)
    ds = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})
    recipe = {
        "llmc-gptq": [GPTQModifier(config_groups=scheme(4, group), ignore=["lm_head"])],
        "llmc-awq": [AWQModifier(config_groups=scheme(4, group), ignore=["lm_head"])],
        "llmc-w8a8": [SmoothQuantModifier(smoothing_strength=0.5),
                      GPTQModifier(config_groups=scheme(8, 0), ignore=["lm_head"])],
    }[method]
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=len(rows[0]),
            num_calibration_samples=len(rows))
    model.save_pretrained(out, save_compressed=True)
    tok.save_pretrained(out)


def gptqmodel(src, out, rows, group):
    # GPTQModel 7.7 sizes its CPU worker pool as (cores + 1) // 2 = 1 here, and then refuses to
    # start: "Virtual pool 'model_loader:cpu' requests 2 workers but parent 'cpu' only has 1".
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    # It also writes a logs/ folder into the working directory: keep it beside the output.
    src, out = os.path.abspath(src), os.path.abspath(out)
    os.chdir(os.path.dirname(out))
    from gptqmodel import GPTQModel, QuantizeConfig
    cfg = QuantizeConfig(bits=4, group_size=group, sym=True, desc_act=False)
    model = GPTQModel.load(src, cfg, device="cpu", dtype=torch.float32)
    model.quantize([{"input_ids": r, "attention_mask": [1] * len(r)} for r in rows], batch_size=1)
    model.save(out)
    dense_export(src, out, out + "-dense", group)


def dense_export(src, out, dense, group):
    """GPTQ v1 checkpoint -> F32 weights: W[o, i] = scales[g, o] * (q[i, o] - (qzeros[g, o] + 1)),
    g = i // group (desc_act off), codes packed 8 per int32 along i (qweight) and o (qzeros)."""
    import shutil
    from safetensors.torch import load_file, save_file
    t = {}
    for f in sorted(os.listdir(out)):
        if f.endswith(".safetensors"):
            t.update(load_file(os.path.join(out, f)))
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    dense_t = {}
    for name, v in t.items():
        if name.endswith(".qweight"):
            m = name[:-len(".qweight")]
            q = ((v[:, None, :] >> shifts[None, :, None]) & 15).reshape(-1, v.shape[1])
            zeros = t[m + ".qzeros"]
            z = ((zeros[:, :, None] >> shifts[None, None, :]) & 15).reshape(zeros.shape[0], -1) + 1
            assert bool((z == 8).all()), f"{m}: not symmetric"
            s = t[m + ".scales"].float()
            g = torch.arange(q.shape[0]) // group
            dense_t[m + ".weight"] = (s[g] * (q - z[g]).float()).t().contiguous()
        elif not name.endswith((".qzeros", ".scales", ".g_idx")):
            dense_t[name] = v.float().contiguous()
    os.makedirs(dense, exist_ok=True)
    save_file(dense_t, os.path.join(dense, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.pop("quantization_config", None)
    json.dump(cfg, open(os.path.join(dense, "config.json"), "w"), indent=1)
    for f in os.listdir(src):
        if f.startswith("tokenizer") or f in ("vocab.json", "merges.txt", "special_tokens_map.json"):
            shutil.copy(os.path.join(src, f), dense)


def main():
    torch.set_num_threads(2)
    cmd = sys.argv[1]
    if cmd == "ids":
        src, calib, n, seq = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        json.dump(calibration_ids(src, calib, n, seq), sys.stdout)
        return
    src, out, ids, group = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    rows = json.load(open(ids))
    if cmd.startswith("llmc-"):
        llmcompressor(cmd, src, out, rows, group)
    elif cmd == "gptqmodel":
        gptqmodel(src, out, rows, group)
    else:
        sys.exit(f"unknown method {cmd}")


if __name__ == "__main__":
    main()
