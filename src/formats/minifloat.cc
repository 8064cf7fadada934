#include "qforge/formats/minifloat.h"

#include <bit>
#include <cmath>
#include <limits>

namespace qforge::formats {

int MiniFloat::emax() const {
  const int top = (1 << exp_bits) - 1;
  // Ieee types reserve the top exponent; Fn and Finite types use it for finite values.
  return (special == Special::Ieee ? top - 1 : top) - bias;
}

float MiniFloat::max_finite() const {
  const int m = (1 << man_bits) - 1;
  // Fn types lose the all-ones mantissa of the top binade to NaN.
  const int mant = special == Special::Fn ? m - 1 : m;
  return std::ldexp(1.0f + static_cast<float>(mant) / static_cast<float>(1 << man_bits), emax());
}

float MiniFloat::decode(uint32_t code) const {
  const uint32_t sign = (code >> (exp_bits + man_bits)) & 1u;
  const uint32_t e = (code >> man_bits) & ((1u << exp_bits) - 1);
  const uint32_t m = code & ((1u << man_bits) - 1);
  const uint32_t top = (1u << exp_bits) - 1;
  float v;
  if (special == Special::Ieee && e == top) {
    v = m == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (special == Special::Fn && e == top && m == (1u << man_bits) - 1) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<float>(m), 1 - bias - man_bits);  // subnormal
  } else {
    v = std::ldexp(1.0f + static_cast<float>(m) / static_cast<float>(1u << man_bits),
                   static_cast<int>(e) - bias);
  }
  return sign ? -v : v;
}

uint32_t MiniFloat::encode(float x, bool saturate) const {
  const uint32_t sign_bit = 1u << (exp_bits + man_bits);
  const uint32_t sign = std::signbit(x) ? sign_bit : 0u;
  const uint32_t top = (1u << exp_bits) - 1;
  if (std::isnan(x)) {
    if (special == Special::Ieee) return sign | (top << man_bits) | (1u << (man_bits - 1));
    if (special == Special::Fn) return sign | (top << man_bits) | ((1u << man_bits) - 1);
    return 0;  // no NaN in this type
  }
  const float a = std::fabs(x);
  const float maxf = max_finite();
  // Largest finite code's magnitude bits.
  const uint32_t max_code = special == Special::Ieee
                                ? ((top - 1) << man_bits) | ((1u << man_bits) - 1)
                            : special == Special::Fn ? (top << man_bits) | ((1u << man_bits) - 2)
                                                     : (top << man_bits) | ((1u << man_bits) - 1);
  if (std::isinf(a)) {
    if (!saturate && special == Special::Ieee) return sign | (top << man_bits);
    if (!saturate && special == Special::Fn)
      return sign | (top << man_bits) | ((1u << man_bits) - 1);
    return sign | max_code;
  }
  // Work on the exact binary value: a = M * 2^E with M in [2^23, 2^24) (or subnormal f32).
  // The spacing of the target grid at a's binade is 2^(max(exp, 1 - bias) - man_bits).
  int exp;
  (void)std::frexp(a, &exp);  // a = f * 2^exp, f in [0.5, 1)
  const int e_unbiased = exp - 1;
  const int min_normal_exp = 1 - bias;
  const int quantum_exp = std::max(e_unbiased, min_normal_exp) - man_bits;
  // q = a / 2^quantum_exp, rounded to nearest even; exact in float because the division is a
  // power-of-two scaling and the result is below 2^(man_bits + 2).
  const float q = std::nearbyint(std::ldexp(a, -quantum_exp));
  const float rounded = std::ldexp(q, quantum_exp);
  if (rounded > maxf) {
    if (saturate || special == Special::Finite) return sign | max_code;
    if (special == Special::Ieee) return sign | (top << man_bits);
    // Fn without saturation: values that round past the max become NaN (as ml_dtypes does).
    return sign | (top << man_bits) | ((1u << man_bits) - 1);
  }
  if (rounded == 0.0f) return sign;
  int rexp;
  (void)std::frexp(rounded, &rexp);
  const int re = rexp - 1;
  if (re < min_normal_exp) {  // subnormal: mantissa = rounded / 2^(min_normal_exp - man_bits)
    const auto m = static_cast<uint32_t>(std::ldexp(rounded, -(min_normal_exp - man_bits)));
    return sign | m;
  }
  const auto biased = static_cast<uint32_t>(re + bias);
  const auto m = static_cast<uint32_t>(std::ldexp(rounded, -(re - man_bits))) - (1u << man_bits);
  return sign | (biased << man_bits) | m;
}

float e8m0_decode(uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);
}

uint8_t e8m0_encode(float x) {
  // ml_dtypes' cast: the float32 bit pattern rounded to a zero-bit mantissa, halves upwards
  // (which also rounds float32 subnormals correctly); no sign, so negatives and NaN are NaN.
  if (std::isnan(x) || std::signbit(x)) return 0xFF;
  const uint32_t u = std::bit_cast<uint32_t>(x);
  // float32 subnormals: everything up to 2^-127 (bits 0x400000) maps to code 0, the rest to 1.
  if (u < 0x800000u) return u <= 0x400000u ? 0 : 1;
  const uint32_t code = (u + 0x400000u) >> 23;
  return code >= 0xFF ? 0xFF : static_cast<uint8_t>(code);
}

}  // namespace qforge::formats
