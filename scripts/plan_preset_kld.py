#!/usr/bin/env python3
"""The KLD a `qforge plan` measurement predicts for llama.cpp's preset: each tensor at the type
llama-quantize chose for it (read from llama-quantize's log), summed as the planner sums a plan.
Puts a plan's predicted KLD next to the preset's of the same size (docs/RESULTS.md, issue 13).

  scripts/plan_preset_kld.py MEASUREMENT.json LLAMA_QUANTIZE.log
"""
import json
import re
import sys

ROLES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj"}


def hf_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    b = re.match(r"blk\.(\d+)\.(\w+)\.weight$", gguf_name)
    return f"model.layers.{b.group(1)}.{ROLES[b.group(2)]}.weight" if b and b.group(2) in ROLES \
        else None


def preset_types(log):
    """Tensor -> type from llama-quantize's log ("[ i/ n] name - [...] ... converting to q4_K")."""
    types, current = {}, None
    for line in open(log):
        n = re.search(r"\] +(\S+) +- \[", line)
        if n:
            current = hf_name(n.group(1))
        m = re.search(r"converting to (\w+)", line)
        if m and current:
            types[current] = m.group(1).lower()
    return types


def main():
    measurement, log = sys.argv[1:3]
    types = preset_types(log)
    total_kld = total_bytes = 0
    for t in json.load(open(measurement))["tensors"]:
        fmt = types.get(t["name"])
        c = next((c for c in t["candidates"] if c["format"] == fmt), None)
        if c is None:
            sys.exit(f"{log}: {t['name']} has type {fmt}, not a candidate of {measurement}")
        total_kld += c["kld_predicted"]
        total_bytes += c["bytes"]
    print(f"preset: {total_bytes} bytes, predicted KLD {total_kld:.5f}")


if __name__ == "__main__":
    main()
