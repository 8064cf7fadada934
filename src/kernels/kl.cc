// KL(p ‖ softmax(logits)) per position (Highway, dynamic dispatch): the planner's end-to-end
// probes compute it for every position and vocabulary entry, once per probe, so the one
// exponential per entry is vectorised (hwy's Exp, within a few ulp of std::exp).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/kl.cc"
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// After highway.h: per-target ops.
#include "hwy/contrib/math/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qforge::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

double KlFromLogits(const float* HWY_RESTRICT p, const float* HWY_RESTRICT logp,
                    const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> dh;  // as many float lanes as double lanes
  const size_t nf = hn::Lanes(df), nd = hn::Lanes(dd);
  float mx = -std::numeric_limits<float>::infinity();
  size_t i = 0;
  if (n >= nf) {
    auto m = hn::LoadU(df, x);
    for (i = nf; i + nf <= n; i += nf) m = hn::Max(m, hn::LoadU(df, x + i));
    mx = hn::GetLane(hn::MaxOfLanes(df, m));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // Σ exp(x − mx), Σ p (logp − x), Σ p: float exponentials, double sums.
  const auto vmx = hn::Set(dh, mx);
  auto se = hn::Zero(dd), sd = hn::Zero(dd), sp = hn::Zero(dd);
  for (i = 0; i + nd <= n; i += nd) {
    const auto xv = hn::LoadU(dh, x + i);
    se = hn::Add(se, hn::PromoteTo(dd, hn::Exp(dh, hn::Sub(xv, vmx))));
    const auto pv = hn::PromoteTo(dd, hn::LoadU(dh, p + i));
    const auto dv = hn::Sub(hn::PromoteTo(dd, hn::LoadU(dh, logp + i)), hn::PromoteTo(dd, xv));
    sd = hn::MulAdd(pv, dv, sd);
    sp = hn::Add(sp, pv);
  }
  double sum_e = hn::GetLane(hn::SumOfLanes(dd, se));
  double sum_d = hn::GetLane(hn::SumOfLanes(dd, sd));
  double sum_p = hn::GetLane(hn::SumOfLanes(dd, sp));
  for (; i < n; ++i) {
    sum_e += std::exp(x[i] - mx);
    sum_d += static_cast<double>(p[i]) * (static_cast<double>(logp[i]) - x[i]);
    sum_p += p[i];
  }
  const double lse = mx + std::log(sum_e);
  return std::max(0.0, sum_d + lse * sum_p);
}

}  // namespace qforge::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "qforge/kernels/kl.h"

namespace qforge::kernels {

HWY_EXPORT(KlFromLogits);

double kl_from_logits(const float* p, const float* logp, const float* logits, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(KlFromLogits)(p, logp, logits, static_cast<size_t>(n));
}

}  // namespace qforge::kernels
#endif  // HWY_ONCE
