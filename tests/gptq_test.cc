// GPTQ against its definition: a plain float64 implementation of the same recurrence (no lazy
// batching, no blocking) written here from the paper, on random weights and random SPD Hessians.
#include "qforge/quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>

#include "gptq_problem.h"
#include "qforge/core/thread_pool.h"
#include "qforge/quant/format_quantizer.h"

namespace qforge {
namespace {

using testing::Problem;
using testing::random_problem;

// Symmetric int-b with one absmax scale per group of columns: the simplest grid + scale policy.
class SymmetricIntQuantizer : public ColumnQuantizer {
 public:
  SymmetricIntQuantizer(int bits, int64_t group, int64_t rows, int64_t cols)
      : qmax_((1 << (bits - 1)) - 1),
        group_(group),
        cols_(cols),
        scales_(static_cast<size_t>(rows * ((cols + group - 1) / group)), 1.0f) {}
  int64_t group_size() const override { return group_; }
  void choose_scales(int64_t g, int64_t first_row, const float* w, int64_t rows, int64_t width,
                     int64_t ld, const float*) override {
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < width; ++c) amax = std::max(amax, std::fabs(w[r * ld + c]));
      scale(first_row + r, g) = amax > 0 ? amax / qmax_ : 1.0f;
    }
  }
  float round(int64_t row, int64_t col, float v) const override {
    const float s = scales_[row * groups() + col / group_];
    const float code = std::clamp(std::nearbyint(v / s), static_cast<float>(-qmax_ - 1),
                                  static_cast<float>(qmax_));
    return code * s;
  }

 private:
  int64_t groups() const { return (cols_ + group_ - 1) / group_; }
  float& scale(int64_t r, int64_t g) { return scales_[r * groups() + g]; }
  int qmax_;
  int64_t group_, cols_;
  std::vector<float> scales_;
};

// The textbook recurrence (Algorithm 1 without lazy batches), in float64:
// for each column i in order: q = round(w_i); e = (w_i − q) / U_ii; w_j −= e·U_ij for j > i,
// where U is the upper Cholesky factor of (H + λI)⁻¹.
std::vector<double> reference_gptq(const Problem& p, SymmetricIntQuantizer& quant, double damp,
                                   bool act_order) {
  const int64_t n = p.cols, rows = p.rows, gs = quant.group_size();
  std::vector<double> h = p.h;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[i * n + i];
  mean /= n;
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
  // A = (P H Pᵀ + λI)⁻¹ by Gauss-Jordan, then its upper Cholesky factor.
  std::vector<double> a(n * n), inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      a[i * n + j] = h[perm[i] * n + perm[j]] + (i == j ? damp * mean : 0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double piv = a[c * n + c];
    for (int64_t j = 0; j < n; ++j) {
      a[c * n + j] /= piv;
      inv[c * n + j] /= piv;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      for (int64_t j = 0; j < n; ++j) {
        a[r * n + j] -= f * a[c * n + j];
        inv[r * n + j] -= f * inv[c * n + j];
      }
    }
  }
  std::vector<double> u(n * n, 0.0);  // inv = UᵀU, U upper
  for (int64_t i = 0; i < n; ++i) {
    double s = inv[i * n + i];
    for (int64_t k = 0; k < i; ++k) s -= u[k * n + i] * u[k * n + i];
    u[i * n + i] = std::sqrt(s);
    for (int64_t j = i + 1; j < n; ++j) {
      double t = inv[i * n + j];
      for (int64_t k = 0; k < i; ++k) t -= u[k * n + i] * u[k * n + j];
      u[i * n + j] = t / u[i * n + i];
    }
  }
  std::vector<double> w(rows * n), q(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) w[r * n + c] = p.w[r * n + perm[c]];
  auto scales_from = [&](int64_t g, const std::vector<double>& src, bool permuted_cols) {
    std::vector<float> blk(rows * gs);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < gs; ++c)
        blk[r * gs + c] =
            static_cast<float>(permuted_cols ? src[r * n + g * gs + c] : src[r * n + g * gs + c]);
    quant.choose_scales(g, 0, blk.data(), rows, gs, gs, nullptr);
  };
  if (act_order) {
    std::vector<double> orig(p.w.begin(), p.w.end());
    for (int64_t g = 0; g < n / gs; ++g) scales_from(g, orig, false);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!act_order && i % gs == 0) scales_from(i / gs, w, true);
    for (int64_t r = 0; r < rows; ++r) {
      const double qv = quant.round(r, perm[i], static_cast<float>(w[r * n + i]));
      q[r * n + perm[i]] = qv;
      const double e = (w[r * n + i] - qv) / u[i * n + i];
      for (int64_t j = i + 1; j < n; ++j) w[r * n + j] -= e * u[i * n + j];
    }
  }
  return q;
}

TEST(Gptq, WithIdentityHessianEqualsRoundToNearest) {
  const int64_t rows = 16, cols = 256;
  Problem p = random_problem(rows, cols, 1);
  std::fill(p.h.begin(), p.h.end(), 0.0);
  for (int64_t i = 0; i < cols; ++i) p.h[i * cols + i] = 1.0;
  SymmetricIntQuantizer a(4, 64, rows, cols), b(4, 64, rows, cols);
  const GptqResult g = gptq_quantize(p.w.data(), rows, cols, p.h, a);
  const std::vector<float> r = rtn_quantize(p.w.data(), rows, cols, b);
  ASSERT_EQ(g.q.size(), r.size());
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(g.q[i], r[i]) << i;
}

class GptqMatchesReference : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(GptqMatchesReference, OnRandomSpdHessianWithinFloat64Tolerance) {
  const auto [group, act_order] = GetParam();
  const int64_t rows = 24, cols = 256;
  const Problem p = random_problem(rows, cols, 7);
  SymmetricIntQuantizer qa(4, group, rows, cols), qb(4, group, rows, cols),
      qc(4, group, rows, cols);
  GptqOptions o;
  o.act_order = act_order;
  o.block_size = 128;
  const GptqResult g = gptq_quantize(p.w.data(), rows, cols, p.h, qa, o);
  const std::vector<double> ref = reference_gptq(p, qb, o.damp, act_order);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(g.q[i] - ref[i]));
  EXPECT_LE(worst, 1e-5);
  // And GPTQ beats round-to-nearest on its own objective, by a clear margin.
  const std::vector<float> rtn = rtn_quantize(p.w.data(), rows, cols, qc);
  const double rtn_obj = layer_objective(p.w.data(), rtn.data(), rows, cols, p.h);
  EXPECT_LT(g.objective, 0.9 * rtn_obj) << "gptq " << g.objective << " rtn " << rtn_obj;
}

INSTANTIATE_TEST_SUITE_P(GroupsAndOrder, GptqMatchesReference,
                         ::testing::Combine(::testing::Values<int64_t>(32, 128, 256),
                                            ::testing::Bool()));

TEST(Gptq, DeadInputColumnsQuantizeToZero) {
  const int64_t rows = 8, cols = 64;
  Problem p = random_problem(rows, cols, 3);
  for (int64_t j = 0; j < cols; ++j) {
    p.h[5 * cols + j] = 0;
    p.h[j * cols + 5] = 0;
  }
  SymmetricIntQuantizer q(4, 32, rows, cols);
  const GptqResult g = gptq_quantize(p.w.data(), rows, cols, p.h, q);
  EXPECT_EQ(g.dead_columns, 1);
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(g.q[r * cols + 5], 0.0f);
}

// Runs gptq_quantize_chunked over p, collecting the chunks' values in order.
std::vector<float> chunked(const Problem& p, int64_t chunk_rows, const GptqOptions& o,
                           GptqChunkedResult* result = nullptr) {
  std::vector<float> out;
  GptqChunks c;
  c.rows = p.rows;
  c.cols = p.cols;
  c.chunk_rows = chunk_rows;
  c.read = [&](int64_t r0, int64_t r1, float* dst) {
    std::copy(p.w.begin() + r0 * p.cols, p.w.begin() + r1 * p.cols, dst);
  };
  c.make = [](const float*, int64_t rows, int64_t cols) -> std::unique_ptr<ColumnQuantizer> {
    return std::make_unique<SymmetricIntQuantizer>(4, 32, rows, cols);
  };
  c.sink = [&](int64_t r0, int64_t r1, const std::vector<float>& q, const ColumnQuantizer&) {
    EXPECT_EQ(static_cast<int64_t>(out.size()), r0 * p.cols);
    EXPECT_EQ(static_cast<int64_t>(q.size()), (r1 - r0) * p.cols);
    out.insert(out.end(), q.begin(), q.end());
  };
  const GptqChunkedResult r = gptq_quantize_chunked(c, p.h, o, /*measure_rtn=*/true);
  if (result) *result = r;
  return out;
}

TEST(GptqChunked, AnOutputHeadInChunksOfRowsEqualsOneCallOnTheWholeMatrix) {
  const Problem p = random_problem(50, 128, 11);  // 50 rows: chunks of 16, 16, 16 and 2
  for (const bool act_order : {false, true}) {
    GptqOptions o;
    o.act_order = act_order;
    SymmetricIntQuantizer whole_q(4, 32, p.rows, p.cols);
    const GptqResult whole = gptq_quantize(p.w.data(), p.rows, p.cols, p.h, whole_q, o);
    GptqChunkedResult r;
    const std::vector<float> parts = chunked(p, 16, o, &r);
    ASSERT_EQ(parts.size(), whole.q.size());
    for (size_t i = 0; i < parts.size(); ++i) ASSERT_EQ(parts[i], whole.q[i]) << i;
    EXPECT_NEAR(r.objective, whole.objective, 1e-9 * whole.objective);
    SymmetricIntQuantizer rtn_q(4, 32, p.rows, p.cols);
    const std::vector<float> rtn = rtn_quantize(p.w.data(), p.rows, p.cols, rtn_q);
    EXPECT_NEAR(r.objective_rtn, layer_objective(p.w.data(), rtn.data(), p.rows, p.cols, p.h),
                1e-9 * r.objective_rtn);
    EXPECT_LT(r.objective, r.objective_rtn);
  }
}

TEST(GptqChunked, WithIdentityHessianEqualsRoundToNearest) {
  Problem p = random_problem(40, 64, 12);
  std::fill(p.h.begin(), p.h.end(), 0.0);
  for (int64_t i = 0; i < p.cols; ++i) p.h[i * p.cols + i] = 1.0;
  SymmetricIntQuantizer q(4, 32, p.rows, p.cols);
  const std::vector<float> rtn = rtn_quantize(p.w.data(), p.rows, p.cols, q);
  const std::vector<float> parts = chunked(p, 7, {});
  ASSERT_EQ(parts.size(), rtn.size());
  for (size_t i = 0; i < rtn.size(); ++i) ASSERT_EQ(parts[i], rtn[i]) << i;
}

// The planner quantizes one matrix in many formats against one H: the factor made once must give
// every format exactly what a call of its own gives, in any order (nothing in it is consumed).
TEST(Gptq, AFactorSharedByManyFormatsGivesEachItsOwnCallsResult) {
  Problem p = random_problem(24, 256, 21);
  for (int64_t j = 0; j < p.cols; ++j) {  // one dead input as well
    p.h[9 * p.cols + j] = 0;
    p.h[j * p.cols + 9] = 0;
  }
  for (const bool act_order : {false, true}) {
    GptqOptions o;
    o.act_order = act_order;
    const GptqFactor shared = gptq_factor(p.h, p.cols, o);
    for (const auto& [bits, group] : {std::pair{4, 32}, {3, 128}, {4, 256}, {2, 64}}) {
      SymmetricIntQuantizer own_q(bits, group, p.rows, p.cols),
          shared_q(bits, group, p.rows, p.cols);
      const GptqResult own = gptq_quantize(p.w.data(), p.rows, p.cols, p.h, own_q, o);
      const GptqResult via = gptq_quantize(p.w.data(), p.rows, p.h, shared, shared_q);
      ASSERT_EQ(via.q, own.q) << bits << "-bit g" << group << " act_order " << act_order;
      EXPECT_EQ(via.objective, own.objective);
      EXPECT_EQ(via.dead_columns, 1);
      EXPECT_EQ(via.damp_used, own.damp_used);
    }
  }
}

// Tiles of rows run GPTQ side by side on a pool. Rows never exchange error, and the tiles are fixed
// (not cut per thread), so every thread count must give exactly the single-threaded result, in
// every kind of format: per-group scales, k-quant sub-blocks with scale refits, a per-tensor
// global scale (nvfp4), one scale per row (int8-channel); with and without act-order; and a row
// count that leaves a short last tile.
TEST(Gptq, TilesOfRowsOnAPoolGiveTheSingleThreadedResultForAnyThreadCount) {
  const Problem p = random_problem(100, 512, 31);
  ThreadPool two(2), three(3);
  for (const char* name : {"int4-g64", "q4_k", "nvfp4", "int8-channel"})
    for (const bool act_order : {false, true}) {
      GptqOptions o;
      o.act_order = act_order;
      const formats::Format& f = formats::find_format(name);
      const auto make = [&] { return quantizer_maker(f)(p.w.data(), p.rows, p.cols); };
      const auto alone_q = make();
      const GptqResult alone = gptq_quantize(p.w.data(), p.rows, p.cols, p.h, *alone_q, o);
      for (ThreadPool* pool : {&two, &three}) {
        const auto q = make();
        const GptqResult tiled = gptq_quantize(p.w.data(), p.rows, p.cols, p.h, *q, o, pool);
        ASSERT_EQ(tiled.q, alone.q)
            << name << " act_order " << act_order << " on " << pool->size() << " threads";
        EXPECT_EQ(tiled.objective, alone.objective) << name;
        EXPECT_EQ(dynamic_cast<const FormatColumnQuantizer&>(*q).pack(tiled.q.data()),
                  dynamic_cast<const FormatColumnQuantizer&>(*alone_q).pack(alone.q.data()))
            << name;
      }
    }
}

TEST(Gptq, RtnAndTheObjectiveOnAPoolEqualTheirSingleThreadedResults) {
  const Problem p = random_problem(100, 512, 32);
  std::vector<double> diag(static_cast<size_t>(p.cols));
  for (int64_t i = 0; i < p.cols; ++i) diag[i] = p.h[i * p.cols + i];
  ThreadPool pool(3);
  const formats::Format& f = formats::find_format("q4_k");
  const auto a = quantizer_maker(f)(p.w.data(), p.rows, p.cols);
  const auto b = quantizer_maker(f)(p.w.data(), p.rows, p.cols);
  const std::vector<float> alone = rtn_quantize(p.w.data(), p.rows, p.cols, *a, diag.data());
  const std::vector<float> tiled = rtn_quantize(p.w.data(), p.rows, p.cols, *b, diag.data(), &pool);
  ASSERT_EQ(tiled, alone);
  EXPECT_EQ(layer_objective(p.w.data(), tiled.data(), p.rows, p.cols, p.h, &pool),
            layer_objective(p.w.data(), alone.data(), p.rows, p.cols, p.h));
}

TEST(Gptq, RefusesAHessianOfTheWrongSize) {
  const int64_t rows = 4, cols = 32;
  std::vector<float> w(rows * cols, 1.0f);
  std::vector<double> h(10, 0.0);
  SymmetricIntQuantizer q(4, 32, rows, cols);
  EXPECT_ANY_THROW(gptq_quantize(w.data(), rows, cols, h, q));
}

}  // namespace
}  // namespace qforge
