// KV-cache codes to f32 with Highway and runtime dispatch: int8 and int4 codes widened and mapped
// by code * scale + offset, fp8 E4M3 through a 256-entry table. Every value, tails included, goes
// through the same MulAdd, so on one target the result does not depend on where a range starts:
// the cache's packed and still-open keys decode bit-identically.
#include <cstddef>
#include <cstdint>

#ifndef QFORGE_KERNELS_SIMD_KV_AFFINE
#define QFORGE_KERNELS_SIMD_KV_AFFINE
namespace qforge::kernels {
// Scale and offset of value i: one pair for a whole range, or one per value (per-channel keys).
struct KvAffine {
  const float* scale;  // per value, or null: `s` for all
  const float* offset;
  float s, o;
};
}  // namespace qforge::kernels
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kv.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qforge::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI32 = hn::RebindToSigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;  // one byte per float lane

using Affine = KvAffine;

HWY_INLINE hn::Vec<DF> Bytes(const uint8_t* p) {
  const DF df;
  return hn::ConvertTo(df, hn::PromoteTo(DI32(), hn::LoadU(DU8(), p)));
}

HWY_INLINE hn::Vec<DF> Apply(hn::Vec<DF> v, const Affine& a, size_t i) {
  const DF df;
  if (a.scale == nullptr) return hn::MulAdd(v, hn::Set(df, a.s), hn::Set(df, a.o));
  return hn::MulAdd(v, hn::LoadU(df, a.scale + i), hn::LoadU(df, a.offset + i));
}

// A tail value through the same vector operation as the others (on targets without FMA,
// MulAdd rounds twice, and so must the tail).
HWY_INLINE float ApplyScalar(float v, const Affine& a, size_t i) {
  const DF df;
  const float s = a.scale == nullptr ? a.s : a.scale[i], o = a.scale == nullptr ? a.o : a.offset[i];
  return hn::GetLane(hn::MulAdd(hn::Set(df, v), hn::Set(df, s), hn::Set(df, o)));
}

// Codes [first, first + n) of an int8 cache.
void DequantizeInt8(const uint8_t* codes, size_t first, size_t n, const Affine& a, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const uint8_t* c = codes + first;
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(Apply(Bytes(c + i), a, i), df, out + i);
  for (; i < n; ++i) out[i] = ApplyScalar(static_cast<float>(c[i]), a, i);
}

// Int4: two codes a byte, the even index in the low nibble. N bytes give 2N values, written
// interleaved (low, high, low, high ...); per-value affine maps are read the same way.
void DequantizeInt4(const uint8_t* codes, size_t first, size_t n, const Affine& a, float* out) {
  const DF df;
  const DU8 du8;
  const size_t N = hn::Lanes(df);
  auto nibble = [&](size_t k) {  // code k
    return static_cast<float>((codes[k / 2] >> (4 * (k & 1))) & 0x0f);
  };
  size_t i = 0;
  if (first & 1 && n > 0) {
    out[0] = ApplyScalar(nibble(first), a, 0);
    i = 1;
  }
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto b = hn::LoadU(du8, codes + (first + i) / 2);
    const auto lo = hn::ConvertTo(df, hn::PromoteTo(DI32(), hn::And(b, hn::Set(du8, 0x0f))));
    const auto hi = hn::ConvertTo(df, hn::PromoteTo(DI32(), hn::ShiftRight<4>(b)));
    if (a.scale == nullptr) {
      hn::StoreInterleaved2(Apply(lo, a, i), Apply(hi, a, i), df, out + i);
    } else {
      hn::Vec<DF> s_even, s_odd, o_even, o_odd;
      hn::LoadInterleaved2(df, a.scale + i, s_even, s_odd);
      hn::LoadInterleaved2(df, a.offset + i, o_even, o_odd);
      hn::StoreInterleaved2(hn::MulAdd(lo, s_even, o_even), hn::MulAdd(hi, s_odd, o_odd), df,
                            out + i);
    }
  }
  for (; i < n; ++i) out[i] = ApplyScalar(nibble(first + i), a, i);
}

// FP8 E4M3: `table` holds the 256 values; offsets are zero.
void DequantizeFp8(const uint8_t* codes, size_t first, size_t n, const Affine& a,
                   const float* table, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const uint8_t* c = codes + first;
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::GatherIndex(df, table, hn::PromoteTo(DI32(), hn::LoadU(DU8(), c + i)));
    hn::StoreU(Apply(v, a, i), df, out + i);
  }
  for (; i < n; ++i) out[i] = ApplyScalar(table[c[i]], a, i);
}

}  // namespace qforge::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <array>

#include "qforge/core/error.h"
#include "qforge/formats/minifloat.h"
#include "qforge/kernels/kernels.h"

namespace qforge::kernels {

HWY_EXPORT(DequantizeInt8);
HWY_EXPORT(DequantizeInt4);
HWY_EXPORT(DequantizeFp8);

namespace {
void dequantize(formats::KvType t, const uint8_t* codes, size_t first, size_t n, const KvAffine& a,
                float* out) {
  using formats::KvType;
  switch (t) {
    case KvType::Int8:
      return HWY_DYNAMIC_DISPATCH(DequantizeInt8)(codes, first, n, a, out);
    case KvType::Int4:
      return HWY_DYNAMIC_DISPATCH(DequantizeInt4)(codes, first, n, a, out);
    case KvType::Fp8E4M3: {
      static const auto table = [] {
        std::array<float, 256> tb{};
        for (uint32_t k = 0; k < 256; ++k) tb[k] = formats::kE4M3.decode(k);
        return tb;
      }();
      return HWY_DYNAMIC_DISPATCH(DequantizeFp8)(codes, first, n, a, table.data(), out);
    }
    case KvType::F32:
      break;
  }
  fail("internal: KV codes of type {} cannot be dequantized", formats::kv_type_name(t));
}
}  // namespace

void kv_dequantize(formats::KvType t, const uint8_t* codes, size_t first, size_t n, float scale,
                   float offset, float* out) {
  dequantize(t, codes, first, n, {nullptr, nullptr, scale, offset}, out);
}

void kv_dequantize_channels(formats::KvType t, const uint8_t* codes, size_t first, size_t n,
                            const float* scale, const float* offset, float* out) {
  dequantize(t, codes, first, n, {scale, offset, 0.0f, 0.0f}, out);
}

}  // namespace qforge::kernels
#endif  // HWY_ONCE
