// SIMD row primitives (Highway, dynamic dispatch): dot products of a weight row with an f32
// vector and widening of weight rows to f32, for F32, BF16 and F16 storage.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_rows.cc"
#include <cstddef>
#include <cstdint>

#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "qforge/core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace qforge::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DU16 = hn::Rebind<uint16_t, DF>;  // half as many bits, same lane count
using DU32 = hn::RebindToUnsigned<DF>;

// Weight rows stream from memory once per token: ask for the lines 2 KiB ahead of the `count`
// elements at p (decode of bf16 llama-sp-58m: see the prefetch note in kernels/q8_dot.cc).
template <class T>
HWY_INLINE void PrefetchAhead(const T* p, size_t count) {
  const auto* bytes = reinterpret_cast<const char*>(p) + 2048;
  for (size_t i = 0; i < count * sizeof(T); i += 64) hwy::Prefetch(bytes + i);
}

// bf16 -> f32 is a 16-bit left shift of the bit pattern: exact.
HWY_INLINE hn::Vec<DF> LoadBf16(const uint16_t* p) {
  const DF df;
  const DU16 du16;
  const DU32 du32;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, p))));
}

HWY_INLINE hn::Vec<DF> LoadF16(const hwy::float16_t* p) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, p));
}

float DotF32(const void* row, const float* x, size_t n) {
  const DF df;
  const float* w = static_cast<const float*>(row);
  const size_t N = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    PrefetchAhead(w + i, 4 * N);
    a0 = hn::MulAdd(hn::LoadU(df, w + i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, w + i + N), hn::LoadU(df, x + i + N), a1);
    a2 = hn::MulAdd(hn::LoadU(df, w + i + 2 * N), hn::LoadU(df, x + i + 2 * N), a2);
    a3 = hn::MulAdd(hn::LoadU(df, w + i + 3 * N), hn::LoadU(df, x + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(df, w + i), hn::LoadU(df, x + i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) sum += w[i] * x[i];
  return sum;
}

float DotBf16(const void* row, const float* x, size_t n) {
  const DF df;
  const uint16_t* w = static_cast<const uint16_t*>(row);
  const size_t N = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    PrefetchAhead(w + i, 4 * N);
    a0 = hn::MulAdd(LoadBf16(w + i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(LoadBf16(w + i + N), hn::LoadU(df, x + i + N), a1);
    a2 = hn::MulAdd(LoadBf16(w + i + 2 * N), hn::LoadU(df, x + i + 2 * N), a2);
    a3 = hn::MulAdd(LoadBf16(w + i + 3 * N), hn::LoadU(df, x + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(LoadBf16(w + i), hn::LoadU(df, x + i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) sum += bf16_to_f32(w[i]) * x[i];
  return sum;
}

float DotF16(const void* row, const float* x, size_t n) {
  const DF df;
  const hwy::float16_t* w = static_cast<const hwy::float16_t*>(row);
  const size_t N = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    a0 = hn::MulAdd(LoadF16(w + i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(LoadF16(w + i + N), hn::LoadU(df, x + i + N), a1);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(LoadF16(w + i), hn::LoadU(df, x + i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) sum += f16_to_f32(reinterpret_cast<const uint16_t*>(w)[i]) * x[i];
  return sum;
}

void WidenBf16(const void* row, float* out, size_t n) {
  const DF df;
  const uint16_t* w = static_cast<const uint16_t*>(row);
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadBf16(w + i), df, out + i);
  for (; i < n; ++i) out[i] = bf16_to_f32(w[i]);
}

void WidenF16(const void* row, float* out, size_t n) {
  const DF df;
  const hwy::float16_t* w = static_cast<const hwy::float16_t*>(row);
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadF16(w + i), df, out + i);
  for (; i < n; ++i) out[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(w)[i]);
}

// f32 -> bf16 with round-to-nearest-even (as f32_to_bf16; activations are finite, so the NaN case
// is left to the scalar tail's rule only).
void NarrowBf16(const float* in, uint16_t* out, size_t n) {
  const DF df;
  const DU16 du16;
  const DU32 du32;
  const hn::RebindToSigned<DF> di32;
  const size_t N = hn::Lanes(df);
  const auto bias = hn::Set(du32, 0x7fffu);
  const auto one = hn::Set(du32, 1u);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto u = hn::BitCast(du32, hn::LoadU(df, in + i));
    const auto rounded = hn::Add(u, hn::Add(bias, hn::And(hn::ShiftRight<16>(u), one)));
    // The shifted value fits in 16 bits: a saturating demote from int32 keeps it unchanged.
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, hn::ShiftRight<16>(rounded))), du16, out + i);
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

}  // namespace qforge::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstring>

#include "qforge/core/error.h"
#include "qforge/kernels/kernels.h"

namespace qforge::kernels {

HWY_EXPORT(DotF32);
HWY_EXPORT(DotBf16);
HWY_EXPORT(DotF16);
HWY_EXPORT(WidenBf16);
HWY_EXPORT(WidenF16);
HWY_EXPORT(NarrowBf16);

float dot_row(DType dtype, const std::byte* row, const float* x, int64_t n) {
  switch (dtype) {
    case DType::F32:
      return HWY_DYNAMIC_DISPATCH(DotF32)(row, x, static_cast<size_t>(n));
    case DType::BF16:
      return HWY_DYNAMIC_DISPATCH(DotBf16)(row, x, static_cast<size_t>(n));
    case DType::F16:
      return HWY_DYNAMIC_DISPATCH(DotF16)(row, x, static_cast<size_t>(n));
    default:
      fail("dot_row: unsupported weight dtype {}", dtype_name(dtype));
  }
}

void widen_row(DType dtype, const std::byte* row, float* out, int64_t n) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, row, static_cast<size_t>(n) * 4);
      return;
    case DType::BF16:
      HWY_DYNAMIC_DISPATCH(WidenBf16)(row, out, static_cast<size_t>(n));
      return;
    case DType::F16:
      HWY_DYNAMIC_DISPATCH(WidenF16)(row, out, static_cast<size_t>(n));
      return;
    default:
      fail("widen_row: unsupported weight dtype {}", dtype_name(dtype));
  }
}

void narrow_to_bf16(const float* in, uint16_t* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(NarrowBf16)(in, out, static_cast<size_t>(n));
}

std::string simd_target_name() {
  // The best target that is both compiled in and supported by this CPU is the one dispatched.
  const auto targets = hwy::SupportedAndGeneratedTargets();
  return targets.empty() ? "unknown" : hwy::TargetName(targets.front());
}

}  // namespace qforge::kernels
#endif  // HWY_ONCE
