// A packed matrix computes what its decoded f32 copy computes, for every registered format, on
// every Highway target this binary has and this CPU runs: decode (1-8 tokens, fused per row
// chunk) and prefill (decoded tiles into sgemm), with and without a bias, and row ranges read at
// any offset (the tensor header of per-tensor and NVFP4 formats stays apart from the rows).
//
// Tolerance. Both sides multiply the same f32 weights (Format::decode_rows equals decode bit for
// bit) by the same f32 inputs and differ only in summation order (SIMD lanes, sgemm blocking).
// For any order, |fl(sum) - sum| <= gamma_n * sum |w_i x_i| with gamma_n ~ n u (Higham, Accuracy
// and Stability, 3.1), u = 2^-24. We assert 2 n u sum |w_i x_i| (+ a tiny absolute floor for
// all-zero rows), a bound a wrong weight, a wrong row or a wrong scale exceeds by orders of
// magnitude (one wrong 4-bit code in a row changes y by ~|scale x|, far above 1e-4 of the sum).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "hwy/targets.h"
#include "kernels/onednn_gemm.h"
#include "kernels/q8_dot.h"
#include "qforge/core/thread_pool.h"
#include "qforge/formats/format.h"
#include "qforge/formats/matrix.h"
#include "qforge/kernels/kernels.h"

namespace qforge {
namespace {

struct Problem {
  int64_t rows, cols;
  std::vector<float> w, x, bias;
};

Problem random_problem(int64_t rows, int64_t cols, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Problem p{rows, cols, {}, {}, {}};
  p.w.resize(static_cast<size_t>(rows * cols));
  for (auto& v : p.w) v = 0.02f * n(rng);
  for (int64_t c = 0; c < cols; c += 97) p.w[static_cast<size_t>(c)] = 0.5f;  // outliers
  p.x.resize(static_cast<size_t>(tokens * cols));
  for (auto& v : p.x) v = n(rng);
  p.bias.resize(static_cast<size_t>(rows));
  for (auto& v : p.bias) v = n(rng);
  return p;
}

// y = x W^T (+ bias) through kernels::matmul, for a plain or packed W.
std::vector<float> run(const Matrix& w, const Problem& p, int64_t tokens, bool with_bias,
                       ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(tokens * w.rows), NAN);
  kernels::matmul(w, p.x.data(), tokens, y.data(), w.rows, pool,
                  with_bias ? p.bias.data() : nullptr);
  return y;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                  const std::vector<float>& decoded, const Problem& p, int64_t tokens,
                  const std::string& what) {
  const double u = std::ldexp(1.0, -24);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < p.rows; ++r) {
      double mag = std::abs(p.bias[static_cast<size_t>(r)]);
      for (int64_t c = 0; c < p.cols; ++c)
        mag += std::abs(static_cast<double>(decoded[static_cast<size_t>(r * p.cols + c)]) *
                        p.x[static_cast<size_t>(t * p.cols + c)]);
      const size_t i = static_cast<size_t>(t * p.rows + r);
      ASSERT_NEAR(got[i], want[i], 2.0 * p.cols * u * mag + 1e-30)
          << what << " token " << t << " row " << r;
    }
}

void check_format(const formats::Format& f, const std::string& target, ThreadPool& pool) {
  const int64_t cols =
      f.info().row_multiple * ((512 + f.info().row_multiple - 1) / f.info().row_multiple);
  const int64_t rows = 45;  // not a multiple of the GEMV grain or the decode chunk
  const Problem p = random_problem(rows, cols, 17, 7);
  const std::vector<std::byte> bytes = f.encode(p.w.data(), rows, cols);
  const Matrix packed = packed_matrix("w", f, rows, cols, bytes.data());
  std::vector<float> decoded(static_cast<size_t>(rows * cols));
  f.decode(bytes.data(), rows, cols, decoded.data());
  const Matrix plain{"w", DType::F32, rows, cols,
                     reinterpret_cast<const std::byte*>(decoded.data())};
  const std::string what = f.name() + " on " + target;

  // Row ranges at any offset decode exactly as the whole tensor does.
  std::vector<float> part(static_cast<size_t>(7 * cols));
  packed.rows_to_f32(13, 7, part.data());
  for (size_t i = 0; i < part.size(); ++i)
    ASSERT_EQ(part[i], decoded[13 * cols + i]) << what << " rows [13, 20) element " << i;

  for (int64_t tokens : {1, 3, 8, 17})
    for (bool with_bias : {false, true}) {
      const std::vector<float> got = run(packed, p, tokens, with_bias, pool);
      const std::vector<float> want = run(plain, p, tokens, with_bias, pool);
      Problem shown = p;
      if (!with_bias) std::fill(shown.bias.begin(), shown.bias.end(), 0.0f);
      expect_close(got, want, decoded, shown, tokens,
                   what + " tokens " + std::to_string(tokens) + (with_bias ? " +bias" : ""));
    }

  // A row slice (Phi-3's fused q/k/v) reads its own rows.
  const Matrix slice = packed.slice_rows(20, 9, "w[20:29]");
  std::vector<float> y(9);
  kernels::matmul(slice, p.x.data(), 1, y.data(), 9, pool);
  const std::vector<float> all = run(plain, p, 1, false, pool);
  for (int r = 0; r < 9; ++r)
    ASSERT_NEAR(y[r], all[20 + r], 1e-3 * (1 + std::abs(all[20 + r])))
        << what << " slice row " << r;
}

TEST(PackedMatmul, EveryFormatComputesWhatItsDecodedCopyComputesOnEveryTarget) {
  ThreadPool pool(2);
  kernels::q8::set_enabled(false);  // exact f32 activations here; the integer path is below
  const auto targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (const int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (const formats::Format* f : formats::all_formats())
      check_format(*f, hwy::TargetName(target), pool);
  }
  hwy::SetSupportedTargetsForTest(0);
  kernels::q8::set_enabled(true);
}

// The integer path quantizes each token's activations in blocks of 32 (x = d U + e, |e| <= d/2)
// and sums exactly in integers, on every instruction set this CPU has kernels for (AVX-512 VNNI,
// AVX2), so its distance to the exact product of the decoded weights is at most
// sum_i |w_i| d_block(i) / 2 (plus the f32 rounding bound above). A wrong code, scale, offset
// or block index is far outside that bound; the test also checks the bound is not vacuous (the
// integer path differs from the exact one, as quantizing activations must).
void integer_kernels_stay_within_the_activation_rounding_bound();
TEST(PackedMatmul, IntegerKernelsStayWithinTheActivationRoundingBound) {
  if (!kernels::q8::enabled()) GTEST_SKIP() << "no integer kernels on this CPU (or turned off)";
  for (const kernels::q8::Isa isa : kernels::q8::supported_isas()) {
    kernels::q8::set_isa(isa);
    SCOPED_TRACE(kernels::q8::isa_name(isa));
    integer_kernels_stay_within_the_activation_rounding_bound();
  }
  kernels::q8::set_enabled(true);
}

void integer_kernels_stay_within_the_activation_rounding_bound() {
  ThreadPool pool(2);
  // 544 columns: 17 blocks of 32, so the kernels' last 64-wide step holds a single block.
  const std::pair<const char*, int64_t> cases[] = {
      {"q4_0", 512},        {"q4_0", 544},           {"q8_0", 512},         {"q8_0", 544},
      {"iq4_nl", 512},      {"iq4_nl", 544},         {"q4_k", 512},         {"q5_k", 512},
      {"q6_k", 512},        {"iq4_xs", 512},         {"int4-g32", 512},     {"int4-g32", 544},
      {"int4-g128", 512},   {"int4-channel", 512},   {"int4-channel", 544}, {"int8-channel", 544},
      {"int8-g128", 512},   {"int4-g128-bf16", 512}, {"mxfp4", 512},        {"mxfp4", 544},
      {"int4-g64", 512},    {"int8-channel", 512},   {"int4-g64", 1088},    {"nvfp4", 512},
      {"nvfp4", 544},       {"fp4-g16", 544},        {"fp4-g32", 544},      {"fp4-g64", 512},
      {"fp4-channel", 512}, {"fp4-g32-bf16", 512}};
  for (const auto& [name, cols] : cases) {
    const formats::Format& f = formats::find_format(name);
    const int64_t rows = 45;
    const Problem p = random_problem(rows, cols, 8, 11);
    const std::vector<std::byte> bytes = f.encode(p.w.data(), rows, cols);
    const Matrix packed = packed_matrix("w", f, rows, cols, bytes.data());
    ASSERT_NE(kernels::q8::layout_for(packed), kernels::q8::Layout::None) << name;
    const std::vector<float> decoded = packed.to_f32();
    kernels::q8::Activations a;
    double largest_gap = 0;
    for (int64_t tokens = 1; tokens <= 8; ++tokens) {
      kernels::q8::quantize(p.x.data(), tokens, cols, a);
      std::vector<float> got(static_cast<size_t>(tokens * rows));
      kernels::matmul(packed, p.x.data(), tokens, got.data(), rows, pool, p.bias.data());
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double exact = p.bias[static_cast<size_t>(r)], bound = 0, mag = std::abs(exact);
          for (int64_t c = 0; c < cols; ++c) {
            const double wv = decoded[static_cast<size_t>(r * cols + c)];
            const double xv = p.x[static_cast<size_t>(t * cols + c)];
            exact += wv * xv;
            mag += std::abs(wv * xv);
            bound += std::abs(wv) * a.d[static_cast<size_t>(t * (cols / 32) + c / 32)] / 2;
          }
          const double gap = std::abs(got[static_cast<size_t>(t * rows + r)] - exact);
          largest_gap = std::max(largest_gap, gap);
          ASSERT_LE(gap, 1.001 * bound + 4.0 * cols * std::ldexp(1.0, -24) * mag)
              << name << " tokens " << tokens << " token " << t << " row " << r;
        }
    }
    EXPECT_GT(largest_gap, 0.0) << name << ": the integer path did not run";
  }
}

// Decode quantizes its activations with AVX2 where the integer kernels run; every view it builds
// (both planes, the int16 codes in both orders, scales, run and block sums) must hold exactly the
// values of the scalar rule (integer kernels off), or the two paths would compute different
// products. Blocks: random of several magnitudes, all zero, and ones whose scale d is exactly 1
// (amax 32512), holding ties (x.5: nearbyint rounds to even) and the hi/lo boundaries.
TEST(PackedMatmul, VectorizedActivationQuantizationHoldsTheScalarRulesValues) {
  if (!kernels::q8::enabled()) GTEST_SKIP() << "no integer kernels on this CPU (or turned off)";
  const int64_t tokens = 3, cols = 32 * 12;
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float* xb = &x[b * 32];
    if (b % 4 == 1) continue;  // an all-zero block
    if (b % 4 == 3) {
      const float edges[] = {32512.0f, -32512.0f, 0.5f,      1.5f,    2.5f,    -0.5f,   -1.5f,
                             -2.5f,    127.5f,    128.5f,    -127.5f, -128.5f, -128.0f, 255.5f,
                             -255.5f,  32511.5f,  -32511.5f, 383.5f,  -384.5f, 0.0f};
      for (int i = 0; i < 32; ++i) xb[i] = i < 20 ? edges[i] : std::nearbyint(normal(rng) * 3e4f);
      continue;
    }
    const float magnitude = std::ldexp(1.0f, static_cast<int>(b % 24) - 12);
    for (int i = 0; i < 32; ++i) xb[i] = magnitude * normal(rng);
  }
  kernels::q8::set_enabled(false);
  kernels::q8::Activations scalar, vectorized;
  kernels::q8::quantize(x.data(), tokens, cols, scalar);
  for (const kernels::q8::Isa isa : kernels::q8::supported_isas()) {
    kernels::q8::set_isa(isa);
    SCOPED_TRACE(kernels::q8::isa_name(isa));
    kernels::q8::quantize(x.data(), tokens, cols, vectorized);
    EXPECT_EQ(vectorized.hi, scalar.hi);
    EXPECT_EQ(vectorized.lo, scalar.lo);
    EXPECT_EQ(vectorized.units, scalar.units);
    EXPECT_EQ(vectorized.units_even_odd, scalar.units_even_odd);
    EXPECT_EQ(vectorized.d, scalar.d);
    EXPECT_EQ(vectorized.lane_d, scalar.lane_d);
    EXPECT_EQ(vectorized.lane_sum, scalar.lane_sum);
    EXPECT_EQ(vectorized.block_sum, scalar.block_sum);
    EXPECT_EQ(vectorized.half_sum, scalar.half_sum);
  }
  // The edge blocks reach both ends of the codes (the test would not see a saturating pack).
  EXPECT_EQ(*std::max_element(scalar.units.begin(), scalar.units.end()), 32512);
  EXPECT_EQ(*std::min_element(scalar.units.begin(), scalar.units.end()), -32512);
  EXPECT_EQ(*std::min_element(scalar.lo.begin(), scalar.lo.end()), -128);
  kernels::q8::set_enabled(true);
}

// W8A8 / W4A8 decoding: each token's activations are rounded once to int8 on its own grid
// (x = s q), and the kernels must then compute exactly the products of the decoded weights with
// s q, as the f32 simulation does: only the f32 rounding of the scaling and of the sums remains.
void integer_kernels_with_per_token_activations_compute_the_simulation();
TEST(PackedMatmul, IntegerKernelsWithPerTokenActivationsComputeTheSimulation) {
  if (!kernels::q8::enabled()) GTEST_SKIP() << "no integer kernels on this CPU (or turned off)";
  for (const kernels::q8::Isa isa : kernels::q8::supported_isas()) {
    kernels::q8::set_isa(isa);
    SCOPED_TRACE(kernels::q8::isa_name(isa));
    integer_kernels_with_per_token_activations_compute_the_simulation();
  }
  kernels::q8::set_enabled(true);
}

void integer_kernels_with_per_token_activations_compute_the_simulation() {
  ThreadPool pool(2);
  const std::pair<const char*, int64_t> cases[] = {{"int8-channel", 512}, {"int8-channel", 544},
                                                   {"int4-g64", 512},     {"int4-g32", 544},
                                                   {"int8-channel", 256}, {"int8-channel", 768}};
  for (const auto& [name, cols] : cases) {
    const formats::Format& f = formats::find_format(name);
    const int64_t rows = 45;
    const Problem p = random_problem(rows, cols, 8, 17);
    const std::vector<std::byte> bytes = f.encode(p.w.data(), rows, cols);
    const Matrix packed = packed_matrix("w", f, rows, cols, bytes.data());
    const std::vector<float> decoded = packed.to_f32();
    for (int64_t tokens = 1; tokens <= 8; ++tokens) {
      kernels::q8::Activations a;
      kernels::q8::quantize_per_token(p.x.data(), tokens, cols, a);
      std::vector<float> got(static_cast<size_t>(tokens * rows));
      kernels::matmul(packed, p.x.data(), tokens, got.data(), rows, pool, p.bias.data(),
                      kernels::InputQuant::Int8PerToken);
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const double s = a.d[static_cast<size_t>(t * (cols / 32))];
          double want = p.bias[static_cast<size_t>(r)], mag = std::abs(want);
          for (int64_t c = 0; c < cols; ++c) {
            const double wx = decoded[static_cast<size_t>(r * cols + c)] * s *
                              a.hi[static_cast<size_t>(t * cols + c)];
            want += wx;
            mag += std::abs(wx);
          }
          ASSERT_NEAR(got[static_cast<size_t>(t * rows + r)], want,
                      4.0 * cols * std::ldexp(1.0, -24) * mag)
              << name << " cols " << cols << " tokens " << tokens << " token " << t << " row " << r;
        }
    }
  }
}

// Fast prefill rounds activations and (unless stored bf16) weights to bf16 and sums their products
// in f32 on oneDNN. Rounding to nearest gives |fl(v) - v| <= 2^-9 |v| for each factor, so each
// product is off by at most (2^-9 + 2^-9 + 2^-18) |w x| and the row by that times sum |w_i x_i|,
// plus the f32 summation bound above. A wrong tile, row, bias or stride is far outside it; the test
// also checks the bound is not vacuous (the fast path differs from the exact one) and that the
// exact setting still matches exactly what the decoded copy gives.
TEST(PackedMatmul, FastPrefillStaysWithinTheBf16RoundingBound) {
  if (!kernels::onednn::bf16_gemm_available()) GTEST_SKIP() << "oneDNN has no bf16 GEMM here";
  ThreadPool pool(2);
  const double u = std::ldexp(1.0, -24),
               per_product = 2 * std::ldexp(1.0, -9) + std::ldexp(1.0, -18);
  for (const char* name :
       {"bf16", "f16", "q4_0", "q4_k", "q6_k", "int4-g128", "nvfp4", "fp8-e4m3"}) {
    const bool plain_dtype = std::string(name) == "bf16" || std::string(name) == "f16";
    const int64_t rows = 300, cols = 512, tokens = 33;  // 300: a partial last tile of 128 rows
    const Problem p = random_problem(rows, cols, tokens, 5);
    std::vector<std::byte> bytes;
    Matrix w;
    std::vector<float> decoded(static_cast<size_t>(rows * cols));
    if (plain_dtype) {
      const DType dt = std::string(name) == "bf16" ? DType::BF16 : DType::F16;
      bytes.resize(static_cast<size_t>(rows * cols * 2));
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (size_t i = 0; i < p.w.size(); ++i) {
        h[i] = dt == DType::BF16 ? f32_to_bf16(p.w[i]) : f32_to_f16(p.w[i]);
        decoded[i] = dt == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
      }
      w = Matrix{"w", dt, rows, cols, bytes.data()};
    } else {
      const formats::Format& f = formats::find_format(name);
      bytes = f.encode(p.w.data(), rows, cols);
      w = packed_matrix("w", f, rows, cols, bytes.data());
      decoded = w.to_f32();
    }
    std::vector<float> exact, fast;
    {
      kernels::ScopedPrefillKernel k(kernels::PrefillKernel::Exact);
      exact = run(w, p, tokens, true, pool);
    }
    {
      kernels::ScopedPrefillKernel k(kernels::PrefillKernel::Fast);
      EXPECT_NE(kernels::matmul_path(w, tokens).find("onednn"), std::string::npos) << name;
      fast = run(w, p, tokens, true, pool);
    }
    double largest_gap = 0;
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double want = p.bias[static_cast<size_t>(r)], mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double wx = static_cast<double>(decoded[static_cast<size_t>(r * cols + c)]) *
                            p.x[static_cast<size_t>(t * cols + c)];
          want += wx;
          mag += std::abs(wx);
        }
        const size_t i = static_cast<size_t>(t * rows + r);
        const double gap = std::abs(fast[i] - want);
        largest_gap = std::max(largest_gap, gap);
        ASSERT_LE(gap, per_product * mag + 2.0 * cols * u * (mag + std::abs(want)))
            << name << " token " << t << " row " << r;
        ASSERT_NEAR(exact[i], want,
                    2.0 * cols * u * (mag + std::abs(p.bias[static_cast<size_t>(r)])))
            << name << " exact, token " << t << " row " << r;
      }
    EXPECT_GT(largest_gap, 0.0) << name << ": the fast path did not round anything";
  }
}

// W8A8 / W4A8 prefill: int8 activations per token times the weights' int codes, summed exactly in
// int32 on oneDNN, then scaled. Against the same quantities summed in float64, only the f32 scaling
// and the sum over groups round: within a few f32 units of sum |scales q_w q_x|.
TEST(PackedMatmul, Int8PrefillSumsTheIntegerCodesExactly) {
  if (!kernels::onednn::int8_gemm_available() || !kernels::q8::enabled())
    GTEST_SKIP() << "no oneDNN int8 GEMM or no VNNI here";
  ThreadPool pool(2);
  for (const char* name :
       {"int8-channel", "int4-channel", "int4-g128", "int8-g128", "int4-g32", "int4-g64"})
    for (auto [rows, cols, tokens] : std::vector<std::array<int64_t, 3>>{{300, 512, 21},
                                                                         {256, 256, 96},
                                                                         {768, 256, 96},
                                                                         {256, 768, 96},
                                                                         {128, 256, 96},
                                                                         {128, 256, 95}}) {
      const formats::Format& f = formats::find_format(name);
      const Problem p = random_problem(rows, cols, tokens, 9);
      const std::vector<std::byte> bytes = f.encode(p.w.data(), rows, cols);
      const Matrix w = packed_matrix("w", f, rows, cols, bytes.data());
      ASSERT_TRUE(kernels::runs_int8_activations(w, tokens)) << name;
      EXPECT_EQ(kernels::matmul_path(w, tokens, kernels::InputQuant::Int8PerToken),
                "int8 codes + onednn s8 gemm");
      std::vector<float> got(static_cast<size_t>(tokens * rows));
      kernels::matmul(w, p.x.data(), tokens, got.data(), rows, pool, p.bias.data(),
                      kernels::InputQuant::Int8PerToken);
      kernels::q8::Activations a;
      kernels::q8::quantize_per_token(p.x.data(), tokens, cols, a);
      const int64_t width = kernels::q8::group_width(w), groups = cols / width;
      std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
      std::vector<float> scales(static_cast<size_t>(rows * groups));
      kernels::q8::unpack_int_groups(w, 0, rows, codes.data(), scales.data());
      const std::vector<float> decoded = w.to_f32();
      for (size_t i = 0; i < codes.size(); ++i)  // the codes are the format's own values
        ASSERT_EQ(decoded[i], codes[i] * scales[i / static_cast<size_t>(width)])
            << name << " " << i;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const double sx = a.d[static_cast<size_t>(t * (cols / 32))];
          double want = p.bias[static_cast<size_t>(r)], mag = std::abs(want);
          for (int64_t c = 0; c < cols; ++c) {
            const double term = sx * scales[static_cast<size_t>(r * groups + c / width)] *
                                codes[static_cast<size_t>(r * cols + c)] *
                                a.hi[static_cast<size_t>(t * cols + c)];
            want += term;
            mag += std::abs(term);
          }
          ASSERT_NEAR(got[static_cast<size_t>(t * rows + r)], want,
                      (4.0 + 2.0 * groups) * std::ldexp(1.0, -24) * mag)
              << name << " token " << t << " row " << r;
        }
    }
}

// q/k/v and gate/up share one parallel region when decoding (kernels::matmul_group): each row is
// computed by the same kernel on the same quantized input as matmul alone computes it, so the
// results are identical bit for bit, whatever mix of plain, packed and integer-kernel matrices.
TEST(PackedMatmul, AGroupComputesExactlyWhatEachMatmulComputes) {
  ThreadPool pool(2);
  const int64_t cols = 512;
  const Problem p = random_problem(300, cols, 17, 3);
  std::vector<std::vector<std::byte>> storage;
  std::vector<Matrix> ws;
  for (auto [name, rows] : std::vector<std::pair<std::string, int64_t>>{
           {"q4_k", 300}, {"bf16", 128}, {"int4-g128", 64}, {"iq4_xs", 45}}) {
    if (name == "bf16") {
      storage.emplace_back(static_cast<size_t>(rows * cols * 2));
      auto* h = reinterpret_cast<uint16_t*>(storage.back().data());
      for (int64_t i = 0; i < rows * cols; ++i) h[i] = f32_to_bf16(p.w[static_cast<size_t>(i)]);
      ws.push_back(Matrix{name, DType::BF16, rows, cols, storage.back().data()});
    } else {
      const formats::Format& f = formats::find_format(name);
      storage.push_back(f.encode(p.w.data(), rows, cols));
      ws.push_back(packed_matrix(name, f, rows, cols, storage.back().data()));
    }
  }
  for (int64_t tokens : {1, 2, 4, 5, 8, 17}) {
    std::vector<std::vector<float>> alone, grouped;
    std::vector<kernels::LinearTarget> targets;
    for (const Matrix& w : ws) {
      alone.push_back(run(w, p, tokens, true, pool));
      grouped.emplace_back(alone.back().size(), NAN);
    }
    for (size_t i = 0; i < ws.size(); ++i)
      targets.push_back({&ws[i], grouped[i].data(), ws[i].rows, p.bias.data()});
    kernels::matmul_group(targets, p.x.data(), tokens, pool);
    for (size_t i = 0; i < ws.size(); ++i)
      EXPECT_EQ(grouped[i], alone[i]) << ws[i].name << " tokens " << tokens;
  }
}

TEST(PackedMatmul, TheFormatSaysHowManyBytesARowTakes) {
  for (const formats::Format* f : formats::all_formats()) {
    const int64_t cols = f->info().row_multiple * 8;
    EXPECT_EQ(f->encoded_bytes(5, cols), f->header_bytes() + 5 * f->row_bytes(cols)) << f->name();
    const Matrix m = packed_matrix("w", *f, 5, cols, nullptr);
    EXPECT_EQ(m.row_bytes(), f->row_bytes(cols)) << f->name();
  }
}

}  // namespace
}  // namespace qforge
