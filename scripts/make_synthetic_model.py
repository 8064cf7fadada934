#!/usr/bin/env python3
"""Writes a synthetic Llama-style Hugging Face model of random BF16 weights (for memory tests).

Weights are random BF16 values of magnitude 2^-7..2^-5 with random signs; norms are ones. The
tokenizer is copied from the model embedded in the repo (its vocabulary sets vocab_size).
Usage: scripts/make_synthetic_model.py OUT_DIR --layers N [--hidden 1024] [--intermediate 2816]
Only the Python standard library is used (no numpy on the machines this runs on).
"""
import argparse
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_FROM = os.path.join(ROOT, "models", "tiny-llama-bpe-7m")
CHUNK = 1 << 23  # elements generated at a time

# High byte of a BF16 value: sign from the random byte's top bit, exponent bits 0111100x.
HIGH = bytes((0xBC if b & 0x80 else 0x3C) for b in range(256))


def random_bf16(count, out):
    while count > 0:
        n = min(count, CHUNK)
        buf = bytearray(2 * n)
        buf[0::2] = os.urandom(n)
        buf[1::2] = os.urandom(n).translate(HIGH)
        out.write(buf)
        count -= n


def ones_bf16(count, out):
    out.write(b"\x80\x3f" * count)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2816)
    ap.add_argument("--head-dim", type=int, default=64)
    args = ap.parse_args()

    with open(os.path.join(TOKENIZER_FROM, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    d, ff, hd = args.hidden, args.intermediate, args.head_dim
    heads = d // hd
    tensors = [("model.embed_tokens.weight", [vocab, d], random_bf16)]
    for i in range(args.layers):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", [d], ones_bf16),
            (p + "self_attn.q_proj.weight", [d, d], random_bf16),
            (p + "self_attn.k_proj.weight", [d, d], random_bf16),
            (p + "self_attn.v_proj.weight", [d, d], random_bf16),
            (p + "self_attn.o_proj.weight", [d, d], random_bf16),
            (p + "post_attention_layernorm.weight", [d], ones_bf16),
            (p + "mlp.gate_proj.weight", [ff, d], random_bf16),
            (p + "mlp.up_proj.weight", [ff, d], random_bf16),
            (p + "mlp.down_proj.weight", [d, ff], random_bf16),
        ]
    tensors.append(("model.norm.weight", [d], ones_bf16))

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in tensors:
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, shape, fill in tensors:
            n = 1
            for s in shape:
                n *= s
            fill(n, f)
    os.replace(tmp, os.path.join(args.out, "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
        "intermediate_size": ff, "num_hidden_layers": args.layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "head_dim": hd, "hidden_act": "silu",
        "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": True, "vocab_size": vocab, "torch_dtype": "bfloat16",
        "bos_token_id": 0, "eos_token_id": 0,
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER_FROM, name), args.out)
    print(f"{args.out}: {args.layers} layers, {(offset + len(h) + 8) / 1e9:.3f} GB")


if __name__ == "__main__":
    main()
