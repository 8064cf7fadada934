// What the integer kernels of every instruction set (q8_dot_vnni.cc, q8_dot_avx2.cc) need to know
// about a packed layout beyond its block struct: where a qforge group format keeps its scales and
// codes, how a k-quant packs its sub-block scales, and the small tables that turn 4-bit codes into
// exact integers. Internal to kernels/.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "formats/block_formats.h"
#include "kernels/q8_dot.h"
#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/formats/gguf_blocks.h"

namespace qforge::kernels::q8 {

// Where a symmetric qforge integer format keeps a row's groups: [scale][codes] each, the codes
// offset by 8 (4-bit, two per byte, the first in the low nibble) or 128 (8-bit).
struct IntGroups {
  int bits = 4;
  int64_t width = 0;  // weights per group (the row for per-channel scales), a multiple of 32
  formats::ScaleType scale = formats::ScaleType::F16;
  size_t scale_bytes = 2;
  size_t group_bytes = 0;
};
bool int_groups(const Matrix& w, IntGroups* g);

// Where qforge's 4-bit minifloat (E2M1) formats keep a row's groups: [scale][codes, 2 per byte,
// LSB first], the weight being scale * e2m1(code). Twice every E2M1 value is an integer in
// [-12, 12], so the codes map to exact bytes through a 16-entry table and the kernels use half
// the scale.
struct Fp4Groups {
  int64_t width = 0;  // weights per scale: 16, 32 or a multiple of 64
  formats::ScaleType scale = formats::ScaleType::F16;
  size_t scale_bytes = 2, group_bytes = 0;
  float tensor_scale = 1.0f;  // NVFP4: the f32 scale in the tensor's header
  // E8M0 / NVFP4: half the scale of every 8-bit scale code (tensor scale included), so that a
  // kernel decodes a scale with one load.
  const float* half_scale_of_code = nullptr;
};
// Fills g (all but half_scale_of_code); false if w is not such a format.
bool fp4_groups(const Matrix& w, Fp4Groups* g);
// Half the value of every 8-bit scale code of E8M0 or NVFP4 (with its tensor scale), as the
// format decodes it: a table kept per thread, rebuilt only when the type or tensor scale changes.
const float* half_scale_table(formats::ScaleType type, float tensor_scale);

// Twice every E2M1 code's value (an integer in [-12, 12]), as signed bytes.
const std::array<int8_t, 16>& e2m1_twice();

// The scale of a group stored as f16, bf16 or f32 at p.
inline float group_scale(const uint8_t* p, formats::ScaleType t) {
  uint16_t h;
  float f;
  switch (t) {
    case formats::ScaleType::F16:
      std::memcpy(&h, p, 2);
      return f16_to_f32(h);
    case formats::ScaleType::BF16:
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    default:
      std::memcpy(&f, p, 4);
      return f;
  }
}

// The 6-bit scales and mins of the 8 sub-blocks of a Q4_K / Q5_K block, one byte each (the
// 12-byte packing of llama.cpp's get_scale_min_k4, unpacked four at a time).
struct ScaleMinBytes {
  uint32_t scale[2], min[2];
};
inline ScaleMinBytes scales_and_mins_k4(const uint8_t* s) {
  uint32_t v[3];
  std::memcpy(v, s, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  return {{v[0] & k6,                                 // sub-blocks 0-3: bytes 0-3, low 6 bits
           (v[2] & k4) | (((v[0] >> 6) & k2) << 4)},  // 4-7: bytes 8-11 low nibble + 2 bits
          {v[1] & k6,                                 // mins 0-3: bytes 4-7
           ((v[2] >> 4) & k4) | (((v[1] >> 6) & k2) << 4)}};
}

// The scale of sub-block k of an IQ4_XS block, in units of d: a 6-bit value minus 32.
inline float iq4_xs_scale(const formats::gguf::BlockIQ4_XS& b, int k) {
  return static_cast<float>(
      (((b.scales_l[k / 2] >> 4 * (k % 2)) & 0xf) | (((b.scales_h >> 2 * k) & 3) << 4)) - 32);
}

// One instruction set's kernels. K, a family of row kernels (VnniKernels, Avx2Kernels), names one
// kernel type per layout (Q4_0, Q8_0, IQ4_NL, K4<fifth bit>, Q6_K, IQ4_XS, Int, Fp4<scale type>)
// and K::rows<kT, Kernel>(w, params, r0, r1, a, y, ldy, bias) runs one over rows [r0, r1).
template <class K, int kT>
void fp4_layout_rows(const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
                     int64_t ldy, const float* bias) {
  using formats::ScaleType;
  Fp4Groups f;
  fp4_groups(w, &f);
  if (f.scale == ScaleType::E8M0 || f.scale == ScaleType::NvFp4)
    f.half_scale_of_code = half_scale_table(f.scale, f.tensor_scale);
  switch (f.scale) {  // one instantiation per scale type: decoding a scale is a load or a lookup
    case ScaleType::F16:
      return K::template rows<kT, typename K::template Fp4<ScaleType::F16>>(w, f, r0, r1, a, y, ldy,
                                                                            bias);
    case ScaleType::BF16:
      return K::template rows<kT, typename K::template Fp4<ScaleType::BF16>>(w, f, r0, r1, a, y,
                                                                             ldy, bias);
    case ScaleType::F32:
      return K::template rows<kT, typename K::template Fp4<ScaleType::F32>>(w, f, r0, r1, a, y, ldy,
                                                                            bias);
    case ScaleType::E8M0:
      return K::template rows<kT, typename K::template Fp4<ScaleType::E8M0>>(w, f, r0, r1, a, y,
                                                                             ldy, bias);
    case ScaleType::NvFp4:
      return K::template rows<kT, typename K::template Fp4<ScaleType::NvFp4>>(w, f, r0, r1, a, y,
                                                                              ldy, bias);
  }
}

template <class K, int kT>
void layout_rows(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
                 int64_t ldy, const float* bias) {
  IntGroups g;
  switch (l) {
    case Layout::Q4_0:
      return K::template rows<kT, typename K::Q4_0>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::Q8_0:
      return K::template rows<kT, typename K::Q8_0>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::Q4_K:
      return K::template rows<kT, typename K::template K4<false>>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::Q5_K:
      return K::template rows<kT, typename K::template K4<true>>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::Q6_K:
      return K::template rows<kT, typename K::Q6_K>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::IQ4_NL:
      return K::template rows<kT, typename K::IQ4_NL>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::IQ4_XS:
      return K::template rows<kT, typename K::IQ4_XS>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::IntGroups:
      int_groups(w, &g);
      return K::template rows<kT, typename K::Int>(w, g, r0, r1, a, y, ldy, bias);
    case Layout::Fp4Groups:
      return fp4_layout_rows<K, kT>(w, r0, r1, a, y, ldy, bias);
    case Layout::None:
      break;
  }
  fail("internal: no integer kernel for '{}'", w.name);
}

// y[t * ldy + r] = w[r] · x_t (+ bias[r]) for rows [r0, r1) and the 1-8 tokens of `a`, by the
// kernels of family K, compiled for each token count.
template <class K>
void gemv_with(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
               int64_t ldy, const float* bias) {
  switch (a.tokens) {
    case 1:
      return layout_rows<K, 1>(l, w, r0, r1, a, y, ldy, bias);
    case 2:
      return layout_rows<K, 2>(l, w, r0, r1, a, y, ldy, bias);
    case 3:
      return layout_rows<K, 3>(l, w, r0, r1, a, y, ldy, bias);
    case 4:
      return layout_rows<K, 4>(l, w, r0, r1, a, y, ldy, bias);
    case 5:
      return layout_rows<K, 5>(l, w, r0, r1, a, y, ldy, bias);
    case 6:
      return layout_rows<K, 6>(l, w, r0, r1, a, y, ldy, bias);
    case 7:
      return layout_rows<K, 7>(l, w, r0, r1, a, y, ldy, bias);
    case 8:
      return layout_rows<K, 8>(l, w, r0, r1, a, y, ldy, bias);
    default:
      fail("internal: the integer GEMV takes 1 to 8 tokens, not {}", a.tokens);
  }
}

// The instruction sets' entry points (gemv_with their family). Call only where the CPU has them.
namespace vnni {
bool cpu_supports();
void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias);
}  // namespace vnni
namespace avx2 {
bool cpu_supports();
void gemv(Layout l, const Matrix& w, int64_t r0, int64_t r1, const Activations& a, float* y,
          int64_t ldy, const float* bias);
// quantize()'s blocks of 32 for every view of `a` (shaped by the caller), the same values as its
// scalar rule: blocks [0, blocks) of x.
void quantize_blocks(const float* x, int64_t blocks, Activations& a);
}  // namespace avx2

}  // namespace qforge::kernels::q8
