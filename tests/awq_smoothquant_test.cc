// AWQ's scale and clipping searches and SmoothQuant's scales, on synthetic layers whose inputs have
// a few outlier channels (the situation both methods were designed for), with a real format.
#include <cmath>
#include <random>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/quant/awq.h"
#include "qforge/quant/format_quantizer.h"
#include "qforge/quant/smoothquant.h"
#include "test_util.h"

namespace qforge {
namespace {

QuantizerMaker maker(const char* format) {
  return quantizer_maker(formats::find_format(format));
}

struct Layer {
  int64_t rows = 48, cols = 128, samples = 512;
  std::vector<float> w, x;  // W [rows, cols], X [samples, cols]
  std::vector<double> h, x_mean, x_max;
};

Layer outlier_layer(uint32_t seed) {
  Layer l;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  l.w.resize(l.rows * l.cols);
  for (float& v : l.w) v = nd(rng);
  l.x.resize(l.samples * l.cols);
  for (int64_t t = 0; t < l.samples; ++t)
    for (int64_t c = 0; c < l.cols; ++c)
      l.x[t * l.cols + c] = nd(rng) * (c % 17 == 3 ? 25.0f : 1.0f);
  l.h.assign(l.cols * l.cols, 0.0);
  l.x_mean.assign(l.cols, 0.0);
  l.x_max.assign(l.cols, 0.0);
  for (int64_t t = 0; t < l.samples; ++t)
    for (int64_t i = 0; i < l.cols; ++i) {
      const double xi = l.x[t * l.cols + i];
      l.x_mean[i] += std::fabs(xi) / l.samples;
      l.x_max[i] = std::max(l.x_max[i], std::fabs(xi));
      for (int64_t j = 0; j < l.cols; ++j)
        l.h[i * l.cols + j] += xi * l.x[t * l.cols + j] / l.samples;
    }
  return l;
}

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

auto identity_expand = [](std::span<const float> s) {
  return std::vector<float>(s.begin(), s.end());
};
auto identity_reduce = [](std::span<const double> v) {
  return std::vector<double>(v.begin(), v.end());
};

TEST(Awq, ScalesBeatPlainRtnAndTheObjectiveIsTheRealOutputError) {
  const Layer l = outlier_layer(1);
  const AwqLinear linear{l.w.data(), l.rows, l.cols, maker("int4-g32")};
  const AwqScales best = awq_search_scales({&linear, 1}, l.h, l.x_mean, identity_expand,
                                           identity_reduce, AwqOptions{}, pool());
  ASSERT_FALSE(best.s.empty()) << "outlier channels must make some scaling worthwhile";
  EXPECT_GE(best.alpha, 0.0);
  EXPECT_LT(best.alpha, 1.0);
  EXPECT_LT(best.objective, 0.9 * best.objective_identity);  // measured: 0.81
  const auto [mn, mx] = std::minmax_element(best.s.begin(), best.s.end());
  EXPECT_NEAR(std::sqrt(double(*mn) * *mx), 1.0, 1e-5);  // normalised as the reference does
  // Independently: quantize W diag(s), undo the scale, and measure ‖X Wᵀ − X Ŵᵀ‖² / n directly.
  std::vector<float> ws(l.w);
  for (int64_t r = 0; r < l.rows; ++r)
    for (int64_t c = 0; c < l.cols; ++c) ws[r * l.cols + c] *= best.s[c];
  std::vector<double> diag(l.cols);
  for (int64_t i = 0; i < l.cols; ++i)
    diag[i] = l.h[i * l.cols + i] / (double(best.s[i]) * best.s[i]);
  auto q = maker("int4-g32")(ws.data(), l.rows, l.cols);
  const std::vector<float> qs = rtn_quantize(ws.data(), l.rows, l.cols, *q, diag.data());
  double err = 0;
  for (int64_t t = 0; t < l.samples; ++t)
    for (int64_t r = 0; r < l.rows; ++r) {
      double e = 0;
      for (int64_t c = 0; c < l.cols; ++c)
        e += l.x[t * l.cols + c] * (l.w[r * l.cols + c] - double(qs[r * l.cols + c]) / best.s[c]);
      err += e * e / l.samples;
    }
  EXPECT_NEAR(err, best.objective, 1e-6 * best.objective);
}

TEST(Awq, WithoutOutliersIdentityMayWinAndIsNeverBeaten) {
  Layer l = outlier_layer(2);
  // Isotropic inputs: H = I, every channel equally important.
  std::fill(l.h.begin(), l.h.end(), 0.0);
  for (int64_t i = 0; i < l.cols; ++i) l.h[i * l.cols + i] = 1.0;
  std::fill(l.x_mean.begin(), l.x_mean.end(), 0.8);
  const AwqLinear linear{l.w.data(), l.rows, l.cols, maker("int4-g32")};
  const AwqScales best = awq_search_scales({&linear, 1}, l.h, l.x_mean, identity_expand,
                                           identity_reduce, AwqOptions{}, pool());
  EXPECT_LE(best.objective, best.objective_identity);
  if (best.s.empty()) {
    EXPECT_EQ(best.alpha, -1);
  }
}

TEST(Awq, ClippingNeverLosesToNoClippingOnItsOwnObjective) {
  const Layer l = outlier_layer(3);
  const AwqLinear linear{l.w.data(), l.rows, l.cols, maker("int3-g32")};
  const std::vector<float> ratios = awq_search_clip(linear, l.h, AwqOptions{}, pool());
  ASSERT_EQ(ratios.size(), static_cast<size_t>(l.rows * (l.cols / 32)));
  int clipped = 0;
  for (float r : ratios) {
    EXPECT_GE(r, 0.55f - 1e-6f);
    EXPECT_LE(r, 1.0f);
    clipped += r < 1.0f;
  }
  EXPECT_GT(clipped, 0) << "int3 should profit from clipping somewhere";
  std::vector<double> diag(l.cols);
  for (int64_t i = 0; i < l.cols; ++i) diag[i] = l.h[i * l.cols + i];
  auto plain = maker("int3-g32")(l.w.data(), l.rows, l.cols);
  ClippedQuantizer clip(maker("int3-g32")(l.w.data(), l.rows, l.cols), ratios, l.cols / 32);
  const std::vector<float> qp = rtn_quantize(l.w.data(), l.rows, l.cols, *plain, diag.data());
  const std::vector<float> qc = rtn_quantize(l.w.data(), l.rows, l.cols, clip, diag.data());
  // Per row and group: Δ H_gg Δᵀ with the chosen ratio is at most that of ratio 1.
  for (int64_t r = 0; r < l.rows; ++r)
    for (int64_t g = 0; g < l.cols / 32; ++g) {
      auto block_err = [&](const std::vector<float>& q) {
        double e = 0;
        for (int64_t i = g * 32; i < g * 32 + 32; ++i)
          for (int64_t j = g * 32; j < g * 32 + 32; ++j)
            e += (l.w[r * l.cols + i] - q[r * l.cols + i]) * l.h[i * l.cols + j] *
                 (l.w[r * l.cols + j] - q[r * l.cols + j]);
        return e;
      };
      EXPECT_LE(block_err(qc), block_err(qp) * (1 + 1e-9) + 1e-12) << r << " " << g;
    }
  // The objective it optimises overall: lower with clipping.
  EXPECT_LT(layer_objective(l.w.data(), qc.data(), l.rows, l.cols, l.h),
            layer_objective(l.w.data(), qp.data(), l.rows, l.cols, l.h));
}

TEST(Awq, ClipRatiosOfOneChangeNothing) {
  const Layer l = outlier_layer(4);
  auto plain = maker("nvfp4")(l.w.data(), l.rows, l.cols);
  ClippedQuantizer clip(maker("nvfp4")(l.w.data(), l.rows, l.cols),
                        std::vector<float>(l.rows * (l.cols / 16), 1.0f), l.cols / 16);
  EXPECT_EQ(rtn_quantize(l.w.data(), l.rows, l.cols, *plain),
            rtn_quantize(l.w.data(), l.rows, l.cols, clip));
}

TEST(SmoothQuant, ScalesFollowEquationFour) {
  const std::vector<double> act = {8.0, 1.0, 0.0, 2.0}, wmax = {0.5, 2.0, 1.0, 0.0};
  const std::vector<float> s = smoothquant_scales(act, wmax, 0.5);
  EXPECT_FLOAT_EQ(s[0], 4.0f);  // sqrt(8) / sqrt(0.5)
  EXPECT_FLOAT_EQ(s[1], static_cast<float>(1 / std::sqrt(2.0)));
  EXPECT_FLOAT_EQ(s[2], 1.0f);  // dead input channel
  EXPECT_FLOAT_EQ(s[3], 1.0f);  // zero weight column
  const std::vector<float> all_weights = smoothquant_scales(act, wmax, 1.0);
  EXPECT_FLOAT_EQ(all_weights[0], 8.0f);  // alpha 1: s = max|X|
  EXPECT_THROW(smoothquant_scales(act, wmax, 1.5), Error);
}

TEST(SmoothQuant, EqualisesActivationAndWeightRangesAtHalf) {
  const Layer l = outlier_layer(5);
  std::vector<double> wmax(l.cols, 0.0);
  for (int64_t r = 0; r < l.rows; ++r)
    for (int64_t c = 0; c < l.cols; ++c)
      wmax[c] = std::max(wmax[c], double(std::fabs(l.w[r * l.cols + c])));
  const std::vector<float> s = smoothquant_scales(l.x_max, wmax, 0.5);
  for (int64_t c = 0; c < l.cols; ++c)  // max|X_j| / s_j == max|W_j| * s_j
    EXPECT_NEAR(l.x_max[c] / s[c], wmax[c] * s[c], 1e-4 * l.x_max[c] / s[c]);
}

}  // namespace
}  // namespace qforge
