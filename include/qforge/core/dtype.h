// Storage dtypes of unquantized tensors and exact conversions between them and f32.
// Quantized formats live in the formats module; this header only knows plain IEEE-ish types.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace qforge {

// F8_E4M3 is stored (compressed-tensors FP8 weights and NVFP4 block scales); formats/ decodes it.
enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL, F8_E4M3 };

// Bytes per element.
size_t dtype_size(DType t);
// Safetensors spelling: "F32", "BF16", ...
std::string_view dtype_name(DType t);
// Parses the safetensors spelling; nullopt for names this build does not know.
std::optional<DType> dtype_from_name(std::string_view name);
// True for dtypes the forward pass can read as weights (F32, F16, BF16).
bool is_float_weight_dtype(DType t);

inline float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Round-to-nearest-even; NaN stays (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 <-> binary32, exact (f16 -> f32) and round-to-nearest-even (f32 -> f16).
// Exact, and cheap enough to call once per block in decoders: normal values rebias the exponent
// with an integer add; subnormals are mant * 2^-24 (exact in float, with no subnormal float
// operands, which are slow on some CPUs); the top binade is Inf or quiet NaN.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = h & 0x7c00u;
  const uint32_t mag = static_cast<uint32_t>(h & 0x7fffu) << 13;
  uint32_t bits;
  if (exp == 0)
    bits = std::bit_cast<uint32_t>(static_cast<float>(h & 0x3ffu) * 0x1p-24f);
  else if (exp == 0x7c00u)
    bits = mag | 0x7f800000u | ((h & 0x3ffu) != 0 ? 0x400000u : 0u);
  else
    bits = mag + ((127u - 15u) << 23);
  return std::bit_cast<float>(bits | sign);
}
uint16_t f32_to_f16(float f);

// Converts `n` elements of `src` (dtype `t`, possibly unaligned) to f32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace qforge
