// Formats of activations (dynamic per-token int8 / fp8) and of KV-cache groups.
#include <cmath>
#include <random>

#include "hwy/targets.h"
#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/formats/activation.h"
#include "qforge/formats/kv_quant.h"
#include "qforge/formats/minifloat.h"
#include "qforge/kernels/kernels.h"
#include "test_util.h"

namespace qforge::formats {
namespace {

// Rows with outliers and a zero row, like real linear-layer inputs.
std::vector<float> activation_rows(int64_t n, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * dim));
  for (float& v : x) v = dist(rng);
  for (int64_t t = 0; t < n; ++t) x[t * dim + (t * 7) % dim] *= 40.0f;  // an outlier channel
  std::fill(x.begin(), x.begin() + dim, 0.0f);                          // row 0: all zero
  return x;
}

TEST(ActivationQuant, Int8PerTokenRoundsEachRowToItsOwnGrid) {
  const int64_t n = 16, dim = 96;
  const std::vector<float> x = activation_rows(n, dim, 1);
  std::vector<float> q = x;
  fake_quantize_activations(ActivationFormat::Int8, q.data(), n, dim);
  for (int64_t t = 0; t < n; ++t) {
    float amax = 0;
    for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(x[t * dim + i]));
    if (amax == 0) {
      for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(q[t * dim + i], 0.0f);
      continue;
    }
    const double scale = amax / 127.0;
    bool saw_max = false;
    for (int64_t i = 0; i < dim; ++i) {
      const double code = q[t * dim + i] / scale;
      EXPECT_NEAR(code, std::nearbyint(code), 1e-4) << "row " << t;  // on the grid
      EXPECT_LE(std::fabs(code), 127.0 + 1e-4);
      EXPECT_LE(std::fabs(q[t * dim + i] - x[t * dim + i]), scale / 2 * (1 + 1e-5));
      saw_max = saw_max || std::fabs(std::fabs(code) - 127.0) < 1e-4;
    }
    EXPECT_TRUE(saw_max) << "the row maximum maps to code 127";
  }
}

TEST(ActivationQuant, Fp8PerTokenPicksTheNearestE4M3ValueOfEachScaledElement) {
  const int64_t n = 8, dim = 64;
  const std::vector<float> x = activation_rows(n, dim, 2);
  std::vector<float> q = x;
  fake_quantize_activations(ActivationFormat::Fp8E4M3, q.data(), n, dim);
  for (int64_t t = 1; t < n; ++t) {
    float amax = 0;
    for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(x[t * dim + i]));
    const float scale = amax / 448.0f;
    for (int64_t i = 0; i < dim; ++i) {
      const float v = x[t * dim + i] / scale, got = q[t * dim + i] / scale;
      // Independent reference: the distance to the nearest finite E4M3 value, by exhaustion.
      float best = INFINITY;
      for (uint32_t c = 0; c < 256; ++c) {
        const float e = kE4M3.decode(c);
        if (std::isfinite(e)) best = std::min(best, std::fabs(e - v));
      }
      EXPECT_NEAR(std::fabs(got - v), best, 1e-3f * std::max(1.0f, std::fabs(v)))
          << "row " << t << " value " << v;
    }
  }
}

TEST(ActivationQuant, NamesParseAndUnknownOnesListTheKnown) {
  EXPECT_EQ(parse_activation_format("int8"), ActivationFormat::Int8);
  EXPECT_EQ(parse_activation_format("fp8-e4m3"), ActivationFormat::Fp8E4M3);
  EXPECT_EQ(activation_format_name(ActivationFormat::Fp8E4M3), "fp8-e4m3");
  try {
    parse_activation_format("int4");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: none, int8, fp8-e4m3"), std::string::npos);
  }
}

TEST(KvQuant, IntegerGroupsReconstructWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.5f, 2.0f);
  for (KvType t : {KvType::Int8, KvType::Int4}) {
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<float> x(64);
      for (float& v : x) v = dist(rng) * (rep % 5 + 1);
      const KvGroupParams p = kv_choose_params(t, x.data(), 64, 1);
      const float scale = f16_to_f32(p.scale);
      float lo = *std::min_element(x.begin(), x.end()), hi = *std::max_element(x.begin(), x.end());
      EXPECT_LE(scale, (hi - lo) / ((1 << kv_bits(t)) - 1) * 1.002f + 1e-6f);
      for (float v : x) {
        const uint8_t c = kv_encode(t, v, p);
        EXPECT_LT(c, 1 << kv_bits(t));
        // Half a step, plus the fp16 rounding of the offset and of a step's multiple.
        EXPECT_LE(std::fabs(kv_decode(t, c, p) - v), scale * 0.5f + 2e-3f * (hi - lo) + 1e-6f)
            << kv_type_name(t);
      }
    }
  }
}

TEST(KvQuant, Fp8GroupsKeepThreeMantissaBits) {
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> x(32);
  for (float& v : x) v = dist(rng);
  const KvGroupParams p = kv_choose_params(KvType::Fp8E4M3, x.data(), 32, 1);
  const float scale = f16_to_f32(p.scale);
  for (float v : x) {
    const float r = kv_decode(KvType::Fp8E4M3, kv_encode(KvType::Fp8E4M3, v, p), p);
    EXPECT_LE(std::fabs(r - v), std::max(std::fabs(v) / 16, scale * 0x1p-10f) * 1.01f) << v;
  }
}

// The SIMD dequantizer of the KV cache, on every compiled target: each value within one rounding
// of code * scale + offset (two on targets without FMA, where MulAdd rounds twice), and a value
// is the same whatever range it is decoded in (the cache decodes packed and open keys in ranges
// that start at different codes and must read the same values).
TEST(KvQuant, SimdDequantizationMatchesTheCodesOnEveryTarget) {
  std::mt19937 rng(6);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> codes(300);
  for (uint8_t& c : codes) c = static_cast<uint8_t>(byte(rng));
  for (uint8_t& c : codes)  // no E4M3 NaN (0x7f, 0xff): the cache never stores one
    if ((c & 0x7f) == 0x7f) c = 0x7e;
  std::vector<float> scale(300), offset(300);
  for (size_t i = 0; i < scale.size(); ++i) {
    scale[i] = 0.01f * static_cast<float>(i % 17 + 1);
    offset[i] = -0.3f * static_cast<float>(i % 5);
  }
  auto value = [&](KvType t, size_t k) {  // code k's value before the affine map
    if (t == KvType::Int4) return static_cast<double>((codes[k / 2] >> (4 * (k & 1))) & 0x0f);
    if (t == KvType::Int8) return static_cast<double>(codes[k]);
    return static_cast<double>(kE4M3.decode(codes[k]));
  };
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (KvType t : {KvType::Int8, KvType::Int4, KvType::Fp8E4M3}) {
      const size_t n = 240;  // codes [first, first + n) with first odd and even
      const float o = t == KvType::Fp8E4M3 ? 0.0f : 1.25f;
      for (size_t first : {0u, 1u, 2u, 7u, 33u}) {
        std::vector<float> one(n), per(n);
        kernels::kv_dequantize(t, codes.data(), first, n, 0.037f, o, one.data());
        kernels::kv_dequantize_channels(
            t, codes.data(), first, n, scale.data(),
            t == KvType::Fp8E4M3 ? std::vector<float>(n).data() : offset.data(), per.data());
        for (size_t i = 0; i < n; ++i) {
          const double want = value(t, first + i) * 0.037 + o;
          ASSERT_NEAR(one[i], want, 2 * 0x1p-24 * (std::fabs(want) + std::fabs(o)) + 1e-30)
              << kv_type_name(t) << " " << hwy::TargetName(target) << " first " << first;
          const double wo = t == KvType::Fp8E4M3 ? 0.0 : offset[i];
          const double want_c = value(t, first + i) * scale[i] + wo;
          ASSERT_NEAR(per[i], want_c, 2 * 0x1p-24 * (std::fabs(want_c) + std::fabs(wo)) + 1e-30)
              << kv_type_name(t) << " " << hwy::TargetName(target) << " channels, first " << first;
        }
        // The sub-range starting 5 codes later reads the same values.
        std::vector<float> later(n - 5);
        kernels::kv_dequantize(t, codes.data(), first + 5, n - 5, 0.037f, o, later.data());
        ASSERT_TRUE(std::equal(later.begin(), later.end(), one.begin() + 5))
            << kv_type_name(t) << " " << hwy::TargetName(target) << " first " << first;
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(KvQuant, BitsPerValueIncludeTheGroupParameters) {
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KvType::Int4, 64), 4.5);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KvType::Int8, 64), 8.5);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KvType::Fp8E4M3, 64), 8.25);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KvType::F32, 64), 32);
  EXPECT_EQ(parse_kv_type("fp8"), KvType::Fp8E4M3);
  EXPECT_THROW(parse_kv_type("int3"), Error);
}

}  // namespace
}  // namespace qforge::formats
