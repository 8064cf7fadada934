// Hadamard transforms: every construction is orthonormal (H Hᵀ = I in float64), the fast
// transform equals multiplication by the dense matrix, and apply_transposed undoes apply.
#include "qforge/kernels/hadamard.h"

#include <cmath>
#include <random>

#include "qforge/core/error.h"
#include "test_util.h"

namespace qforge::kernels {
namespace {

// Orders of every kind: Sylvester (powers of two), Paley I (12 = 11+1, 20, 44), Paley II
// (28 = 2·14, 36 = 2·18), products with powers of two, and the widths of the shared models
// (576 = 36·16 for Qwen's hidden size, 1536 = 12·128 for intermediate sizes).
const int64_t kOrders[] = {1,  2,  4,  8,  12,  20,  24,  28,  36,
                           40, 44, 64, 96, 144, 160, 576, 768, 1536};

TEST(Hadamard, EveryConstructionIsOrthonormal) {
  for (int64_t n : kOrders) {
    ASSERT_TRUE(HadamardTransform::exists(n)) << n;
    const HadamardTransform h(n);
    if (n > 600) continue;  // O(n^3) check; large orders are covered by the next tests
    const std::vector<double> m = h.matrix();
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < n; ++k) dot += m[i * n + k] * m[j * n + k];
        worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-12) << n;
  }
}

TEST(Hadamard, FastTransformEqualsTheDenseMatrixAndItsTransposeInvertsIt) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t n : kOrders) {
    const HadamardTransform h(n);
    const std::vector<double> m = h.matrix();
    std::vector<float> x(static_cast<size_t>(3 * n));
    for (float& v : x) v = dist(rng);
    std::vector<float> y = x;
    h.apply(y.data(), 3);
    double norm_x = 0, norm_y = 0;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double want = 0;  // (x · H)[c]
        for (int64_t k = 0; k < n; ++k) want += x[r * n + k] * m[k * n + c];
        ASSERT_NEAR(y[r * n + c], want, 1e-4) << "n " << n << " col " << c;
        norm_x += double(x[r * n + c]) * x[r * n + c];
        norm_y += double(y[r * n + c]) * y[r * n + c];
      }
    EXPECT_NEAR(norm_y / norm_x, 1.0, 1e-5) << n;
    h.apply_transposed(y.data(), 3);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i], 1e-5) << n;
  }
}

TEST(Hadamard, UsesTheSmallestDenseFactor) {
  EXPECT_EQ(HadamardTransform(512).dense_order(), 1);
  EXPECT_EQ(HadamardTransform(576).dense_order(), 36);
  EXPECT_EQ(HadamardTransform(1536).dense_order(), 12);
  EXPECT_EQ(HadamardTransform(144).dense_order(), 36);  // 36 x 4 rather than 12 x 12
}

TEST(Hadamard, OrdersWithoutAConstructionAreRefusedByName) {
  for (int64_t n : {0, 3, 6, 10, 18}) {
    EXPECT_FALSE(HadamardTransform::exists(n)) << n;
    try {
      HadamardTransform h(n);
      ADD_FAILURE() << n;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("order " + std::to_string(n)), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace qforge::kernels
