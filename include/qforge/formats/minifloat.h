// Small floating-point element types (OCP 8-bit FP "OFP8" v1.0, OCP Microscaling MX v1.0) and the
// E8M0 scale type. Conversion from float rounds to nearest, ties to even, exactly.
#pragma once

#include <cstdint>
#include <string>

namespace qforge::formats {

// 1 sign bit + exp_bits + man_bits. Encodings of the top exponent follow the type's rules:
//  - ieee:   all-ones exponent = Inf (mantissa 0) / NaN (E5M2)
//  - fn:     no Inf; only S.1111.111 is NaN, the rest of the top binade is finite (E4M3)
//  - finite: no Inf or NaN at all (FP6 E2M3/E3M2, FP4 E2M1)
struct MiniFloat {
  enum class Special : uint8_t { Ieee, Fn, Finite };
  const char* name;
  int exp_bits, man_bits, bias;
  Special special;

  int bits() const { return 1 + exp_bits + man_bits; }
  int codes() const { return 1 << bits(); }
  float max_finite() const;
  // Exponent of the largest normal value (emax_elem in the MX spec).
  int emax() const;
  float decode(uint32_t code) const;
  // Round to nearest even. Out of range: saturate to ±max_finite when `saturate`, else ±Inf
  // (Ieee) or NaN (Fn, Finite types map to max: they have neither). NaN -> NaN where the type
  // has one, else 0.
  uint32_t encode(float x, bool saturate) const;
};

inline constexpr MiniFloat kE4M3{"e4m3", 4, 3, 7, MiniFloat::Special::Fn};
inline constexpr MiniFloat kE5M2{"e5m2", 5, 2, 15, MiniFloat::Special::Ieee};
inline constexpr MiniFloat kE3M2{"e3m2", 3, 2, 3, MiniFloat::Special::Finite};
inline constexpr MiniFloat kE2M3{"e2m3", 2, 3, 1, MiniFloat::Special::Finite};
inline constexpr MiniFloat kE2M1{"e2m1", 2, 1, 1, MiniFloat::Special::Finite};

// E8M0: an unsigned power of two 2^(code - 127); code 0xFF is NaN.
float e8m0_decode(uint8_t code);
// ml_dtypes' float -> E8M0 cast: the float32 bits rounded to a zero-bit mantissa, halves up
// (verified against its vectors); negatives and NaN give NaN. MX scale selection does not use
// this: it takes floor(log2(amax)).
uint8_t e8m0_encode(float x);

}  // namespace qforge::formats
