// SIMD decoders (Highway, runtime dispatch) for the formats the kernels read. Each is the fast
// path of a scalar decoder and equals it bit for bit on any input (tests/formats_simd_test.cc
// checks every compiled target against Format::decode_reference).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qforge::formats::simd {

// One row of a grouped block format: `groups` groups of `width` codes; group g's codes start at
// codes + g * stride, its scale is scales[g] and its zero point zeros[g] (zeros may be null: 0).
struct RowGroups {
  const uint8_t* codes = nullptr;
  size_t stride = 0;
  int64_t groups = 0;
  int64_t width = 0;
  const float* scales = nullptr;
  const int32_t* zeros = nullptr;
};

// 4-bit codes, two per byte, low nibble first: out[i] = (unit[code] - zero) * scale.
void decode_row_nibbles(const RowGroups& row, const float unit[16], float* out);

// How an 8-bit code becomes a unit value (before the group scale).
enum class ByteCode : uint8_t {
  MinusZero,  // code - zero (symmetric int8 stores code = q + 128, so its zero is 128)
  MxInt8,     // int8(code) / 64 (OCP MX INT8)
  E4M3,       // OCP FP8 E4M3 "fn"
  E5M2,       // OCP FP8 E5M2 (IEEE-like)
};
// 8-bit codes: out[i] = unit(code) * scale.
void decode_row_bytes(const RowGroups& row, ByteCode kind, float* out);

// How a 2- to 7-bit code becomes a unit value (before the group scale).
enum class BitCode : uint8_t {
  MinusZero,      // code - zero (symmetric intN stores q - qmin, so its zero is -qmin)
  SignMagnitude,  // 6-bit codes: bit 5 the sign, bits 0-4 index 32 magnitudes (FP6 E3M2, E2M3)
};
// `bits`-wide codes (2 <= bits <= 8) packed LSB first, each group's from its first byte:
// out[i] = unit(code) * scale. magnitudes: the unit values of codes 0..31 (SignMagnitude only).
// Bytes up to `end` (exclusive) may be read, not only the groups'.
void decode_row_bits(const RowGroups& row, int bits, BitCode kind, const float* magnitudes,
                     const uint8_t* end, float* out);

// Fused decode-and-dot for decoding a few tokens: out[t] = sum_i w_i x[t * ldx + i] for
// t < n_tokens, w the row the decoder above would write (the same values, bit for bit), without
// storing it. Only the summation order differs from decoding, then dotting.
constexpr int kDotTokens = 4;  // tokens per pass over the row (sums kept in registers)
void dot_row_nibbles(const RowGroups& row, const float unit[16], const float* x, int64_t n_tokens,
                     size_t ldx, float* out);
void dot_row_bytes(const RowGroups& row, ByteCode kind, const float* x, int64_t n_tokens,
                   size_t ldx, float* out);

// GGUF block types with a SIMD decoder.
enum class GgufType : uint8_t {
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  IQ4_NL,
  IQ4_XS
};
std::optional<GgufType> gguf_type(std::string_view name);
// Decodes `nblocks` consecutive blocks into out (nblocks * block_weights floats).
void decode_gguf(GgufType type, const uint8_t* blocks, int64_t nblocks, float* out);

}  // namespace qforge::formats::simd
