#include "qforge/eval/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "qforge/core/error.h"
#include "qforge/kernels/kernels.h"
#include "qforge/model/sampler.h"

namespace qforge {
namespace {

// log-sum-exp of a row, in double.
double log_sum_exp(std::span<const float> x, float mx) {
  double s = 0;
  for (float v : x) s += std::exp(static_cast<double>(v) - mx);
  return std::log(s) + mx;
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

TokenComparison compare_token(std::span<const float> logits, std::span<const float> ref_logits,
                              int32_t target) {
  TokenComparison t;
  const float mx = *std::max_element(logits.begin(), logits.end());
  const float rmx = *std::max_element(ref_logits.begin(), ref_logits.end());
  const double lse = log_sum_exp(logits, mx), rlse = log_sum_exp(ref_logits, rmx);
  double kld = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double lr = ref_logits[i] - rlse, lq = logits[i] - lse;
    kld += std::exp(lr) * (lr - lq);
  }
  t.kld = std::max(0.0, kld);  // tiny negative values are rounding
  t.nll = lse - logits[target];
  t.ref_nll = rlse - ref_logits[target];
  t.p = std::exp(-t.nll);
  t.ref_p = std::exp(-t.ref_nll);
  t.same_top1 = argmax(logits) == argmax(ref_logits);
  return t;
}

ComparisonResult compare_models(Transformer& model, Transformer& reference,
                                std::span<const int32_t> tokens, const PerplexityOptions& options,
                                const std::function<void(int64_t, int64_t)>& progress) {
  const int vocab = model.config().vocab_size;
  check(reference.config().vocab_size == vocab,
        "cannot compare models with different vocabularies ({} vs {} tokens)", vocab,
        reference.config().vocab_size);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> ref_logits(static_cast<size_t>(options.ctx + 1) * vocab);
  KVCache ref_cache = reference.new_cache(options.ctx + 1);
  std::vector<double> klds;
  double nll = 0, ref_nll = 0, dp = 0;
  int64_t agree = 0;
  ComparisonResult r;
  for_each_window(
      model, tokens, options,
      [&](std::span<const int32_t> window, const float* logits) {
        const size_t len = window.size();
        ClusterSum window_kld{.tokens = static_cast<int64_t>(len - 1)};
        {
          // The reference is the exact model: f32 products even when the model runs fast ones.
          kernels::ScopedPrefillKernel exact(kernels::PrefillKernel::Exact);
          reference.forward(window.first(len - 1), 0, ref_cache, ref_logits.data(), true);
        }
        for (size_t i = 0; i + 1 < len; ++i) {
          const TokenComparison t = compare_token(
              {logits + i * vocab, static_cast<size_t>(vocab)},
              {ref_logits.data() + i * vocab, static_cast<size_t>(vocab)}, window[i + 1]);
          klds.push_back(t.kld);
          window_kld.sum += t.kld;
          nll += t.nll;
          ref_nll += t.ref_nll;
          dp += t.p - t.ref_p;
          agree += t.same_top1;
        }
        r.window_klds.push_back(window_kld);
      },
      progress);
  r.tokens = static_cast<int64_t>(klds.size());
  const double n = static_cast<double>(r.tokens);
  r.ppl = std::exp(nll / n);
  r.ref_ppl = std::exp(ref_nll / n);
  double sum = 0;
  for (double k : klds) sum += k;
  r.kld_mean = sum / n;
  r.kld_max = *std::max_element(klds.begin(), klds.end());
  r.kld_mean_stderr = clustered_stderr(r.window_klds);
  r.kld_median = quantile(klds, 0.5);
  r.kld_p99 = quantile(klds, 0.99);
  r.top1_agreement = static_cast<double>(agree) / n;
  r.delta_p_mean = dp / n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace qforge
