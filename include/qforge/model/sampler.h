// Next-token selection: greedy (temperature 0) or temperature + nucleus (top-p) sampling with a
// seeded generator, so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace qforge {

struct SamplerOptions {
  float temperature = 0.8f;  // 0: greedy
  float top_p = 0.95f;       // 1: no nucleus truncation
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Index of the largest logit (the first one on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace qforge
