// Per-type codecs of the GGUF block types: dequantization bit-exact with llama.cpp's
// dequantize_row_*, quantization following llama.cpp's reference algorithms (the same scale
// searches, so the same quality), and requantization of new values under a block's existing
// scales (what GPTQ needs after choosing scales).
#pragma once

#include <cstdint>
#include <string>

namespace qforge::formats::gguf {

// How an element is (re)quantized under its sub-block's scale `a` and offset `m`, exactly as the
// type's requantize does it: uniform types take L = clamp(nearest(x / a), lo, hi) (x - m or x + m
// for Offset::Plus / Minus) and decode to L * a (+ m or - m); a zero scale gives L = 0. Codebook
// types (IQ4) take the nearest IQ4 level of x / a and decode to a * level.
enum class Offset : uint8_t { None, Plus, Minus };

struct TypeCodec {
  const char* name;
  int block_weights;  // 32 or 256
  int block_bytes;
  // y[block_weights] from one block.
  void (*dequantize)(const uint8_t* block, float* y);
  // One block from x[block_weights] with llama.cpp's scale search.
  void (*quantize)(const float* x, uint8_t* block);
  // Rewrites the codes of `block` for x, keeping its scale fields.
  void (*requantize)(const float* x, uint8_t* block);
  // Element rounding under fixed scales (GPTQ's per-element step), see Offset.
  int sub_block;  // weights sharing one (a, m)
  int lo, hi;     // code range of uniform types
  Offset offset;
  bool codebook;
  // a[block_weights / sub_block], m[...] of one block.
  void (*sub_scales)(const uint8_t* block, float* a, float* m);
  // One block from x with llama.cpp's importance-weighted scale search (its quantize_*_impl with
  // quant_weights, as llama-quantize runs it with an imatrix): qw[block_weights] are per-element
  // importances (an imatrix row: mean x² of the input channel). Null for types whose llama.cpp
  // quantization takes no weights (then `quantize` is the encoder).
  void (*quantize_weighted)(const float* x, const float* qw, uint8_t* block);
  // Writes the block's scale fields for sub-block scales a[] and offsets m[] (as sub_scales reads
  // them), quantized to the type's scale format the way its plain encoder does (super-block scale
  // from the largest sub-block scale); the codes are left for requantize. Null for Q2_K. Used to
  // refit a block's scales to codes fixed by GPTQ.
  void (*set_scales)(const float* a, const float* m, uint8_t* block);
  // Types whose sub-block scales are integer levels of a super-block scale: the spacing of the
  // representable scales and offsets (d and dmin; 0 without offsets). Null for the others.
  void (*scale_steps)(const uint8_t* block, float* a_step, float* m_step);
  // Types whose sub-block scale and offset are integer multiples ls * d and lm * dmin of the
  // super-block's d and dmin (scale_steps), ls and lm in [level_lo, level_hi] (Q3_K: -32..31,
  // Q4_K / Q5_K: 0..63, Q6_K: -128..127; lm is 0 without offsets): read or write sub-block `sub`'s
  // multiples, leaving the rest of the block as it is. Null for the others. GPTQ re-chooses a
  // sub-block's levels when it reaches it.
  void (*sub_levels)(const uint8_t* block, int sub, int* ls, int* lm);
  void (*set_sub_levels)(uint8_t* block, int sub, int ls, int lm);
  int level_lo, level_hi;
};

// The value `x` rounds to in a sub-block with scale a and offset m, as requantize + dequantize
// would give it.
float round_element(const TypeCodec& c, float a, float m, float x);

// The 16 signed 6-bit sub-block scales of a Q3_K block from its 12 packed bytes (llama.cpp's
// kmask shuffle); shared by the scalar codec and the SIMD decoder.
void q3_scales(const uint8_t* packed, int8_t* scales);

// nullptr when `name` is not a supported GGUF type.
const TypeCodec* find_codec(const std::string& name);
// All supported types in a stable order.
const TypeCodec* const* all_codecs(int* count);

}  // namespace qforge::formats::gguf
