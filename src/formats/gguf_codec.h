// Per-type codecs of the GGUF block types: dequantization bit-exact with llama.cpp's
// dequantize_row_*, quantization following llama.cpp's reference algorithms (the same scale
// searches, so the same quality), and requantization of new values under a block's existing
// scales (what GPTQ needs after choosing scales).
#pragma once

#include <cstdint>
#include <string>

namespace qforge::formats::gguf {

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
};

// nullptr when `name` is not a supported GGUF type.
const TypeCodec* find_codec(const std::string& name);
// All supported types in a stable order.
const TypeCodec* const* all_codecs(int* count);

}  // namespace qforge::formats::gguf
