// SIMD softmax and SiLU gating (Highway, dynamic dispatch). With bf16 GEMMs, prefill spent more
// time in scalar expf (attention softmax, the MLP gate) than in its matmuls.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_activations.cc"
#include <cstddef>
#include <cstdint>

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// After highway.h: the per-target math functions are defined for each target foreach_target sets.
#include "hwy/contrib/math/math-inl.h"  // NOLINT

HWY_BEFORE_NAMESPACE();
namespace qforge::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// x = exp(x - max) / sum. Highway's Exp is within 1 ULP, as libm's expf; the sum is kept in f32
// lanes (terms in (0, 1], at most a few thousand of them: relative error ~1e-6 at worst).
void Softmax(float* x, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  auto vmax = hn::Set(df, -HUGE_VALF);
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const auto vmx = hn::Set(df, mx);
  auto vsum = hn::Zero(df);
  for (i = 0; i + N <= n; i += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx));
    hn::StoreU(e, df, x + i);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; i < n; ++i) {
    const auto e = hn::Exp(df, hn::Set(df, x[i] - mx));
    x[i] = hn::GetLane(e);
    sum += x[i];
  }
  const auto inv = hn::Set(df, 1.0f / sum);
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), inv), df, x + i);
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

// gate = gate / (1 + exp(-gate)) * up
void SiluMul(float* gate, const float* up, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto one = hn::Set(df, 1.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(df, gate + i);
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(df, hn::Neg(g))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(df, up + i)), df, gate + i);
  }
  for (; i < n; ++i) {
    const auto g = hn::Set(df, gate[i]);
    gate[i] = hn::GetLane(hn::Div(g, hn::Add(one, hn::Exp(df, hn::Neg(g))))) * up[i];
  }
}

}  // namespace qforge::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "qforge/kernels/kernels.h"

namespace qforge::kernels {

HWY_EXPORT(Softmax);
HWY_EXPORT(SiluMul);

void softmax(float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(Softmax)(x, static_cast<size_t>(n));
}

void silu_mul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, static_cast<size_t>(n));
}

}  // namespace qforge::kernels
#endif  // HWY_ONCE
