#include "qforge/core/dtype.h"

#include "qforge/core/error.h"

namespace qforge {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
    case DType::F8_E4M3:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::I16:
      return "I16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::BOOL:
      return "BOOL";
    case DType::F8_E4M3:
      return "F8_E4M3";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view n) {
  static constexpr std::pair<std::string_view, DType> kNames[] = {
      {"F32", DType::F32}, {"F16", DType::F16},   {"BF16", DType::BF16},      {"F64", DType::F64},
      {"I8", DType::I8},   {"U8", DType::U8},     {"I16", DType::I16},        {"I32", DType::I32},
      {"I64", DType::I64}, {"BOOL", DType::BOOL}, {"F8_E4M3", DType::F8_E4M3}};
  for (const auto& [name, t] : kNames)
    if (name == n) return t;
  return std::nullopt;
}

bool is_float_weight_dtype(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520 -> inf
  if (a < 0x38800000u) {                        // result is subnormal (or zero)
    // value = a_float; subnormal unit is 2^-24. Use float arithmetic, which rounds to nearest even.
    const float v = std::bit_cast<float>(a);
    const float scaled = v * 16777216.0f;  // 2^24, exact
    // nearbyint under default rounding mode is RNE
    const uint32_t m = static_cast<uint32_t>(__builtin_nearbyintf(scaled));
    return sign | static_cast<uint16_t>(m);
  }
  // normal: rebias exponent and round mantissa from 23 to 10 bits, ties to even
  uint32_t r = a - ((127u - 15u) << 23);
  r += 0xfffu + ((r >> 13) & 1u);
  return sign | static_cast<uint16_t>(r >> 13);
}

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    default:
      fail("cannot convert dtype {} to f32", dtype_name(t));
  }
}

}  // namespace qforge
