#include "qforge/formats/kv_quant.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/formats/minifloat.h"

namespace qforge::formats {
namespace {

// Smallest normal fp16: scales are kept at least this large, so they never flush to zero.
constexpr float kMinScale = 6.103515625e-05f;
constexpr float kF16Max = 65504.0f;

uint16_t to_f16(float x) {
  return f32_to_f16(std::clamp(x, -kF16Max, kF16Max));
}

}  // namespace

KvType parse_kv_type(std::string_view name) {
  if (name == "f32" || name == "none") return KvType::F32;
  if (name == "int8") return KvType::Int8;
  if (name == "int4") return KvType::Int4;
  if (name == "fp8" || name == "fp8-e4m3") return KvType::Fp8E4M3;
  fail("unknown KV cache type '{}' (known: f32, int8, int4, fp8)", name);
}

std::string kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32:
      return "f32";
    case KvType::Int8:
      return "int8";
    case KvType::Int4:
      return "int4";
    case KvType::Fp8E4M3:
      return "fp8";
  }
  return "?";
}

int kv_bits(KvType t) {
  return t == KvType::F32 ? 32 : t == KvType::Int4 ? 4 : 8;
}

double kv_bits_per_value(KvType t, int group) {
  if (t == KvType::F32) return 32;
  const int param_bits = t == KvType::Fp8E4M3 ? 16 : 32;
  return kv_bits(t) + static_cast<double>(param_bits) / group;
}

KvGroupParams kv_choose_params(KvType t, const float* x, int64_t n, int64_t stride) {
  check(t != KvType::F32, "kv_choose_params: f32 has no parameters");
  float lo = 0.0f, hi = 0.0f, amax = 0.0f;
  if (n > 0) lo = hi = x[0];
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i * stride];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    amax = std::max(amax, std::fabs(v));
  }
  KvGroupParams p;
  if (t == KvType::Fp8E4M3) {
    p.scale = to_f16(std::max(amax / kE4M3.max_finite(), kMinScale));
    return p;
  }
  const float levels = static_cast<float>((1 << kv_bits(t)) - 1);
  p.offset = to_f16(lo);
  // The range is measured from the stored (rounded) offset, so the largest value stays on the grid.
  const float range = hi - f16_to_f32(p.offset);
  p.scale = to_f16(std::max(range / levels, kMinScale));
  return p;
}

uint8_t kv_encode(KvType t, float x, KvGroupParams p) {
  const float scale = f16_to_f32(p.scale);
  if (t == KvType::Fp8E4M3) return static_cast<uint8_t>(kE4M3.encode(x / scale, true));
  const float levels = static_cast<float>((1 << kv_bits(t)) - 1);
  const float q = std::nearbyint((x - f16_to_f32(p.offset)) / scale);
  return static_cast<uint8_t>(std::clamp(q, 0.0f, levels));
}

float kv_decode(KvType t, uint8_t code, KvGroupParams p) {
  const float scale = f16_to_f32(p.scale);
  if (t == KvType::Fp8E4M3) return kE4M3.decode(code) * scale;
  return static_cast<float>(code) * scale + f16_to_f32(p.offset);
}

}  // namespace qforge::formats
