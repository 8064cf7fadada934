// InputStatistics, the Hessian XᵀX / n that GPTQ solves with and the per-channel |x| of AWQ and
// SmoothQuant: against a float64 computation, and the same sums whatever the number of threads
// (its Gram matrix goes in fixed tiles, so a pool changes who computes a tile, not its value).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "qforge/calib/statistics.h"
#include "qforge/core/thread_pool.h"

namespace qforge {
namespace {

// Two calls (sequences) of 37 and 19 rows over 300 channels: tiles of 128, 128 and a partial 44.
constexpr int kDim = 300;
const int kRows[] = {37, 19};

std::vector<std::vector<float>> sequences() {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> seqs;
  for (const int n : kRows) {
    std::vector<float> x(static_cast<size_t>(n) * kDim);
    for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (1.0f + static_cast<float>(i % 7));
    seqs.push_back(x);
  }
  return seqs;
}

InputStatistics accumulate(ThreadPool* pool) {
  InputStatistics s(kDim);
  for (const auto& x : sequences()) s.add(x.data(), static_cast<int>(x.size() / kDim), pool);
  return s;
}

TEST(InputStatistics, MatchesAFloat64GramMatrixAndAbsoluteValues) {
  const InputStatistics s = accumulate(nullptr);
  const std::vector<double> h = s.hessian();
  std::vector<double> gram(static_cast<size_t>(kDim) * kDim, 0.0), bound(gram.size(), 0.0);
  std::vector<double> sum_abs(kDim, 0.0), max_abs(kDim, 0.0);
  int64_t tokens = 0;
  for (const auto& x : sequences()) {
    const int n = static_cast<int>(x.size() / kDim);
    for (int r = 0; r < n; ++r) {
      const float* row = &x[static_cast<size_t>(r) * kDim];
      for (int i = 0; i < kDim; ++i) {
        sum_abs[i] += std::fabs(row[i]);
        max_abs[i] = std::max(max_abs[i], static_cast<double>(std::fabs(row[i])));
        for (int j = 0; j < kDim; ++j) {
          gram[static_cast<size_t>(i) * kDim + j] += static_cast<double>(row[i]) * row[j];
          bound[static_cast<size_t>(i) * kDim + j] +=
              std::fabs(static_cast<double>(row[i]) * row[j]);
        }
      }
    }
    tokens += n;
  }
  ASSERT_EQ(s.tokens(), tokens);
  for (size_t k = 0; k < gram.size(); ++k) {
    // fp32 sums of at most 37 products: error below 37 * 2^-24 of the sum of |products|.
    const double tolerance = 37.0 * std::ldexp(1.0, -24) * bound[k] / static_cast<double>(tokens);
    ASSERT_NEAR(h[k], gram[k] / static_cast<double>(tokens), tolerance) << k;
  }
  for (int i = 0; i < kDim; ++i) {
    EXPECT_NEAR(s.sum_abs()[i], sum_abs[i], 1e-4 * sum_abs[i]);
    EXPECT_EQ(s.max_abs()[i], static_cast<float>(max_abs[i]));
  }
}

TEST(InputStatistics, ThreadsChangeNothing) {
  const InputStatistics alone = accumulate(nullptr);
  for (const int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    const InputStatistics shared = accumulate(&pool);
    EXPECT_EQ(shared.hessian(), alone.hessian()) << threads;
    EXPECT_EQ(shared.sum_abs(), alone.sum_abs()) << threads;
    EXPECT_EQ(shared.max_abs(), alone.max_abs()) << threads;
  }
}

}  // namespace
}  // namespace qforge
