#include "qforge/eval/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "qforge/core/error.h"
#include "qforge/kernels/kernels.h"

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

// What a position's statistics need of the reference, computed once for every model compared:
// its log-sum-exp, its top token, and (in `probs`) its probabilities, in double.
struct ReferenceRow {
  double lse = 0;
  int32_t top1 = 0;
};

ReferenceRow reference_row(std::span<const float> ref_logits, double* probs) {
  const auto top = std::max_element(ref_logits.begin(), ref_logits.end());
  ReferenceRow r{.lse = log_sum_exp(ref_logits, *top),
                 .top1 = static_cast<int32_t>(top - ref_logits.begin())};
  for (size_t i = 0; i < ref_logits.size(); ++i) probs[i] = std::exp(ref_logits[i] - r.lse);
  return r;
}

TokenComparison compare_to_reference(std::span<const float> logits,
                                     std::span<const float> ref_logits, const ReferenceRow& ref,
                                     const double* ref_probs, int32_t target) {
  TokenComparison t;
  const auto top = std::max_element(logits.begin(), logits.end());
  const double lse = log_sum_exp(logits, *top);
  double kld = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double lr = ref_logits[i] - ref.lse, lq = logits[i] - lse;
    kld += ref_probs[i] * (lr - lq);
  }
  t.kld = std::max(0.0, kld);  // tiny negative values are rounding
  t.nll = lse - logits[target];
  t.ref_nll = ref.lse - ref_logits[target];
  t.p = std::exp(-t.nll);
  t.ref_p = std::exp(-t.ref_nll);
  t.same_top1 = top - logits.begin() == ref.top1;
  return t;
}

// Sums one model's per-position statistics into its result; finish() turns them into means.
class ComparisonAccumulator {
 public:
  void add_window(std::span<const TokenComparison> positions) {
    ClusterSum window{.tokens = static_cast<int64_t>(positions.size())};
    for (const TokenComparison& t : positions) {  // in order, so the sums do not depend on threads
      klds_.push_back(t.kld);
      window.sum += t.kld;
      nll_ += t.nll;
      ref_nll_ += t.ref_nll;
      dp_ += t.p - t.ref_p;
      agree_ += t.same_top1;
    }
    r_.window_klds.push_back(window);
  }

  ComparisonResult finish(double seconds) {
    r_.tokens = static_cast<int64_t>(klds_.size());
    const double n = static_cast<double>(r_.tokens);
    r_.ppl = std::exp(nll_ / n);
    r_.ref_ppl = std::exp(ref_nll_ / n);
    double sum = 0;
    for (double k : klds_) sum += k;
    r_.kld_mean = sum / n;
    r_.kld_max = *std::max_element(klds_.begin(), klds_.end());
    r_.kld_mean_stderr = clustered_stderr(r_.window_klds);
    r_.kld_median = quantile(klds_, 0.5);
    r_.kld_p99 = quantile(klds_, 0.99);
    r_.top1_agreement = static_cast<double>(agree_) / n;
    r_.delta_p_mean = dp_ / n;
    r_.seconds = seconds;
    return std::move(r_);
  }

 private:
  ComparisonResult r_;
  std::vector<double> klds_;
  double nll_ = 0, ref_nll_ = 0, dp_ = 0;
  int64_t agree_ = 0;
};

}  // namespace

TokenComparison compare_token(std::span<const float> logits, std::span<const float> ref_logits,
                              int32_t target) {
  std::vector<double> probs(ref_logits.size());
  const ReferenceRow ref = reference_row(ref_logits, probs.data());
  return compare_to_reference(logits, ref_logits, ref, probs.data(), target);
}

std::vector<ComparisonResult> compare_models(
    std::span<Transformer* const> models, Transformer& reference, std::span<const int32_t> tokens,
    const PerplexityOptions& options, const std::function<void(int64_t, int64_t)>& progress) {
  const int vocab = reference.config().vocab_size;
  for (Transformer* m : models)
    check(m->config().vocab_size == vocab,
          "cannot compare models with different vocabularies ({} vs {} tokens)",
          m->config().vocab_size, vocab);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<TextWindow> windows = protocol_windows(tokens.size(), options);
  const size_t rows = static_cast<size_t>(options.ctx), v = static_cast<size_t>(vocab);
  std::vector<float> ref_logits(rows * v), logits(rows * v);
  std::vector<double> ref_probs(rows * v);
  std::vector<ReferenceRow> ref_rows(rows);
  std::vector<TokenComparison> positions(rows);
  KVCache ref_cache = reference.new_cache(options.ctx + 1);
  std::vector<KVCache> caches;
  for (Transformer* m : models) caches.push_back(m->new_cache(options.ctx + 1));
  std::vector<ComparisonAccumulator> sums(models.size());
  ThreadPool& pool = reference.pool();
  const int64_t total = scored_tokens(windows);
  for (const TextWindow& w : windows) {
    const auto window = tokens.subspan(static_cast<size_t>(w.start), static_cast<size_t>(w.length));
    const size_t predicted = window.size() - 1;
    {
      // The reference is the exact model: f32 products even when the models run fast ones.
      kernels::ScopedPrefillKernel exact(kernels::PrefillKernel::Exact);
      forward_window(reference, window, 0, ref_cache, ref_logits.data());
    }
    pool.parallel_for(predicted, [&](size_t begin, size_t end, int) {
      for (size_t i = begin; i < end; ++i)
        ref_rows[i] = reference_row({ref_logits.data() + i * v, v}, ref_probs.data() + i * v);
    });
    for (size_t m = 0; m < models.size(); ++m) {
      forward_window(*models[m], window, options.batch, caches[m], logits.data());
      pool.parallel_for(predicted, [&](size_t begin, size_t end, int) {
        for (size_t i = begin; i < end; ++i)
          positions[i] =
              compare_to_reference({logits.data() + i * v, v}, {ref_logits.data() + i * v, v},
                                   ref_rows[i], ref_probs.data() + i * v, window[i + 1]);
      });
      sums[m].add_window(std::span(positions).first(predicted));
    }
    if (progress) progress(w.start + w.length - 1, total);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<ComparisonResult> results;
  for (ComparisonAccumulator& s : sums) results.push_back(s.finish(seconds));
  return results;
}

ComparisonResult compare_models(Transformer& model, Transformer& reference,
                                std::span<const int32_t> tokens, const PerplexityOptions& options,
                                const std::function<void(int64_t, int64_t)>& progress) {
  Transformer* one = &model;
  return compare_models(std::span(&one, 1), reference, tokens, options, progress).front();
}

}  // namespace qforge
