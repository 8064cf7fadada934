"""Reads GGUF files qforge wrote with llama.cpp's own `gguf` package (an independent reader) and
checks them as llama.cpp would load them; with a decoded twin, checks that gguf's numpy
dequantization of every tensor equals qforge's decode bit for bit.

usage: gguf_python_check.py FILE.gguf [DECODED.gguf] [--arch ARCH] [--no-tokenizer]
  DECODED.gguf: `qforge convert FILE.gguf -o DECODED.gguf --type f32` (qforge's decode of every
  tensor, in the same layout and names).
"""
import argparse
import re
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def fail(path, msg):
    sys.exit(f"{path}: {msg}")


def field_value(reader, key):
    f = reader.get_field(key)
    if f is None:
        return None
    if f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def check_layout(path, r, arch_expected, need_tokenizer):
    arch = field_value(r, "general.architecture")
    if arch_expected and arch != arch_expected:
        fail(path, f"general.architecture is {arch}, expected {arch_expected}")
    # The hyperparameters llama.cpp requires for every supported architecture.
    for key in ["context_length", "embedding_length", "block_count", "feed_forward_length",
                "attention.head_count", "attention.layer_norm_rms_epsilon"]:
        if field_value(r, f"{arch}.{key}") is None:
            fail(path, f"missing {arch}.{key}")
    if r.alignment != 32:
        fail(path, f"alignment {r.alignment}")
    names = {t.name for t in r.tensors}
    blocks = {int(m.group(1)) for n in names if (m := re.match(r"blk\.(\d+)\.", n))}
    if blocks != set(range(field_value(r, f"{arch}.block_count"))):
        fail(path, f"blk.N tensors {sorted(blocks)} do not match block_count")
    for t in r.tensors:
        if t.data_offset % 32:
            fail(path, f"tensor {t.name} at unaligned offset {t.data_offset}")
    if not need_tokenizer and field_value(r, "tokenizer.ggml.model") is None:
        return arch
    embd = next(t for t in r.tensors if t.name == "token_embd.weight")
    vocab = int(embd.shape[1])
    tokens = field_value(r, "tokenizer.ggml.tokens")
    if tokens is None or len(tokens) != vocab:
        fail(path, f"{0 if tokens is None else len(tokens)} tokens for a vocabulary of {vocab}")
    types = field_value(r, "tokenizer.ggml.token_type")
    if types is None or len(types) != vocab:
        fail(path, "token_type missing or of the wrong length")
    model = field_value(r, "tokenizer.ggml.model")
    if model == "gpt2" and not field_value(r, "tokenizer.ggml.merges"):
        fail(path, "a gpt2 tokenizer without merges")
    if model == "llama" and len(field_value(r, "tokenizer.ggml.scores") or []) != vocab:
        fail(path, "a llama tokenizer without a score per token")
    return arch


def check_decode(path, r, decoded_path):
    d = GGUFReader(decoded_path)
    decoded = {t.name: t for t in d.tensors}
    types = {}
    for t in r.tensors:
        mine = decoded.get(t.name)
        if mine is None:
            fail(decoded_path, f"lacks tensor {t.name}")
        ref = dequantize(t.data, t.tensor_type).astype(np.float32)
        got = np.asarray(mine.data, dtype=np.float32).reshape(ref.shape)
        if not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
            bad = np.flatnonzero(ref.view(np.uint32) != got.view(np.uint32))
            fail(path, f"tensor {t.name} ({t.tensor_type.name}): {bad.size} values differ from "
                       f"gguf's dequantization, first at {bad[0]}: "
                       f"{ref.flat[bad[0]]!r} vs {got.flat[bad[0]]!r}")
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return types


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("decoded", nargs="?")
    ap.add_argument("--arch")
    ap.add_argument("--no-tokenizer", action="store_true", help="the model has none (the zoo)")
    a = ap.parse_args()
    r = GGUFReader(a.file)
    arch = check_layout(a.file, r, a.arch, not a.no_tokenizer)
    summary = f"{a.file}: {arch}, {len(r.tensors)} tensors, read by gguf"
    if a.decoded:
        types = check_decode(a.file, r, a.decoded)
        summary += ", bit-identical decode of " + ", ".join(f"{n} {k}" for k, n in types.items())
    print(summary)


main()
