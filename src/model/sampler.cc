#include "qforge/model/sampler.h"

#include <algorithm>
#include <cmath>

#include "qforge/core/error.h"

namespace qforge {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(SamplerOptions options) : options_(options), rng_(options.seed) {
  check(options.temperature >= 0.0f, "temperature must be >= 0 (got {})", options.temperature);
  check(options.top_p > 0.0f && options.top_p <= 1.0f, "top-p must be in (0, 1] (got {})",
        options.top_p);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  const float mx = *std::max_element(logits.begin(), logits.end());
  candidates_.clear();
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float p = std::exp((logits[i] - mx) / options_.temperature);
    candidates_.emplace_back(p, static_cast<int32_t>(i));
    total += p;
  }
  size_t keep = candidates_.size();
  if (options_.top_p < 1.0f) {
    // Smallest set of most likely tokens whose mass reaches top_p.
    std::sort(candidates_.begin(), candidates_.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    double mass = 0.0;
    for (keep = 0; keep < candidates_.size();) {
      mass += candidates_[keep++].first;
      if (mass >= options_.top_p * total) break;
    }
    total = mass;
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double r = uniform(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= candidates_[i].first;
    if (r <= 0.0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace qforge
