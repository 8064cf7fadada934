// A random layer for GPTQ tests: weights and an SPD Hessian shaped like real activations'.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace qforge::testing {

struct Problem {
  int64_t rows, cols;
  std::vector<float> w;
  std::vector<double> h;
};

// W ~ N(0, 1); H = XᵀX for X with correlated columns (like real activations) plus a few
// outlier channels, so error compensation matters.
inline Problem random_problem(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  Problem p{rows, cols, std::vector<float>(rows * cols), std::vector<double>(cols * cols, 0.0)};
  for (auto& v : p.w) v = static_cast<float>(nd(rng));
  const int64_t samples = 4 * cols;
  std::vector<double> x(cols);
  for (int64_t s = 0; s < samples; ++s) {
    double common = nd(rng);
    for (int64_t c = 0; c < cols; ++c) x[c] = 0.6 * common + nd(rng) * (c % 7 == 0 ? 4.0 : 1.0);
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) p.h[i * cols + j] += x[i] * x[j];
  }
  return p;
}

}  // namespace qforge::testing
