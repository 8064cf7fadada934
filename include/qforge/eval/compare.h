// Quality of a model relative to a reference model on the same text, in one streaming pass that
// runs both (no logit files): perplexity of each, KL-divergence(ref ‖ model) per token (mean,
// median, 99th percentile, and the standard error of the mean), top-1 agreement and the mean change
// in the correct token's probability.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qforge/eval/perplexity.h"
#include "qforge/eval/statistics.h"

namespace qforge {

struct ComparisonResult {
  double ppl = 0, ref_ppl = 0;
  double kld_mean = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double kld_mean_stderr = 0;  // of kld_mean, the windows as independent clusters (statistics.h)
  // Per evaluation window, its KLD sum and predicted tokens: two models evaluated on the same text
  // have the same windows, so the standard error of their KLD difference follows (paired).
  std::vector<ClusterSum> window_klds;
  double top1_agreement = 0;  // fraction of positions whose argmax agrees
  double delta_p_mean = 0;    // mean of p_model(correct) - p_ref(correct)
  int64_t tokens = 0;
  double seconds = 0;
};

// Both models must share the vocabulary (the caller checks the tokenizers).
ComparisonResult compare_models(Transformer& model, Transformer& reference,
                                std::span<const int32_t> tokens, const PerplexityOptions& options,
                                const std::function<void(int64_t, int64_t)>& progress = {});

// Several models against one reference, in one pass: each window runs through the reference once
// for all of them, so N models cost N + 1 forward passes instead of 2N. Results in the models'
// order; each is what compare_models of that model alone gives.
std::vector<ComparisonResult> compare_models(
    std::span<Transformer* const> models, Transformer& reference, std::span<const int32_t> tokens,
    const PerplexityOptions& options, const std::function<void(int64_t, int64_t)>& progress = {});

// Per-position statistics of two logit rows, all in double. Exposed for tests.
struct TokenComparison {
  double kld = 0;  // KL(ref ‖ model)
  double nll = 0, ref_nll = 0;
  double p = 0, ref_p = 0;  // probability of the target
  bool same_top1 = false;
};
TokenComparison compare_token(std::span<const float> logits, std::span<const float> ref_logits,
                              int32_t target);

}  // namespace qforge
