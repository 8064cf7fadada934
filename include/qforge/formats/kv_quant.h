// Element codecs of a quantized KV cache: a group of values (the channels of one token, or one
// channel over a run of tokens) shares its quantization parameters.
//   int8 / int4: asymmetric, x ≈ code · scale + offset with codes in [0, 2^bits − 1]; scale and
//                offset are stored as fp16 (KIVI's layout), so a group of G costs bits + 32/G per
//                value
//   fp8-e4m3:    symmetric, x ≈ E4M3fn(x / scale) · scale with scale = absmax / 448 (fp16)
// The cache layout itself (which values form a group, pre- or post-RoPE keys) is model/kv_cache.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qforge::formats {

enum class KvType : uint8_t { F32, Int8, Int4, Fp8E4M3 };

// "f32" (or "none"), "int8", "int4", "fp8" / "fp8-e4m3"; anything else throws Error listing them.
KvType parse_kv_type(std::string_view name);
std::string kv_type_name(KvType t);
int kv_bits(KvType t);  // 32, 8, 4, 8
// Bits per cached value including the per-group parameters.
double kv_bits_per_value(KvType t, int group);

// Quantization parameters of one group, already rounded to their fp16 storage.
struct KvGroupParams {
  uint16_t scale = 0, offset = 0;  // fp16 bits; offset unused by fp8
};

// Parameters for the n values x[0], x[stride], ... (the default rule: min/max for integers,
// absmax for fp8).
KvGroupParams kv_choose_params(KvType t, const float* x, int64_t n, int64_t stride);
// Code of x under p (in [0, 2^bits − 1], or the E4M3 bit pattern), and its value.
uint8_t kv_encode(KvType t, float x, KvGroupParams p);
float kv_decode(KvType t, uint8_t code, KvGroupParams p);

}  // namespace qforge::formats
