// Every format's decode() (SIMD where it has a fast path) equals its scalar decode_reference()
// bit for bit, on every Highway target compiled into this binary and supported by this CPU
// (AVX-512 16 lanes, AVX2 8, SSE4 4, ...): the table lookups take a different route per width.
// Inputs: real encodings of Gaussian weights, and arbitrary bytes (every code, odd scales, NaN
// and Inf scale patterns), for shapes with and without a vector-width tail.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "qforge/formats/format.h"

namespace qforge::formats {
namespace {

// Bitwise equality, with any NaN equal to any NaN (payloads are not part of the contract).
::testing::AssertionResult SameFloats(const std::vector<float>& got,
                                      const std::vector<float>& want) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": simd " << got[i] << " reference " << want[i];
  }
  return ::testing::AssertionSuccess();
}

// Row lengths this format accepts: a multiple of its block, plus a ragged one for per-row and
// per-tensor scales (exercises the scalar tail after the vector loop).
std::vector<int64_t> row_lengths(const Format& f) {
  const int64_t m = f.info().row_multiple;
  std::vector<int64_t> out = {m * ((512 + m - 1) / m)};
  if (m == 1) {
    out.push_back(37);
    out.push_back(256 + 6);
  }
  return out;
}

void check_format(const Format& f, const std::string& where) {
  std::mt19937 rng(7);
  for (const int64_t cols : row_lengths(f)) {
    const int64_t rows = 3;
    std::vector<float> w(static_cast<size_t>(rows * cols));
    std::normal_distribution<float> nd(0.0f, 0.05f);
    for (auto& x : w) x = nd(rng);
    w[5] = 0.9f;  // an outlier so some groups use their full range
    std::vector<std::vector<std::byte>> inputs = {f.encode(w.data(), rows, cols)};
    std::vector<std::byte> noise(f.encoded_bytes(rows, cols));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : noise) b = static_cast<std::byte>(byte(rng));
    inputs.push_back(noise);
    for (size_t k = 0; k < inputs.size(); ++k) {
      std::vector<float> got(w.size(), -1.0f), want(w.size(), -2.0f);
      f.decode(inputs[k].data(), rows, cols, got.data());
      f.decode_reference(inputs[k].data(), rows, cols, want.data());
      EXPECT_TRUE(SameFloats(got, want)) << f.name() << " " << where << " cols=" << cols
                                         << (k == 0 ? " encoded" : " random bytes");
    }
  }
}

TEST(SimdDecode, EqualsTheScalarReferenceOnEveryTarget) {
  const auto targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (const int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Format* f : all_formats()) check_format(*f, hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Every FP8 code through the SIMD path equals the minifloat definition (scale 1 per tensor).
TEST(SimdDecode, EveryFp8CodeDecodesExactly) {
  for (const char* name : {"fp8-e4m3-tensor", "fp8-e5m2"}) {
    const Format& f = find_format(name);
    const int64_t cols = 256;
    std::vector<float> ones(cols, 1.0f);
    auto bytes = f.encode(ones.data(), 1, cols);  // fixes a scale; codes overwritten below
    const size_t header = bytes.size() - cols;
    for (int c = 0; c < 256; ++c) bytes[header + c] = static_cast<std::byte>(c);
    std::vector<float> got(cols), want(cols);
    f.decode(bytes.data(), 1, cols, got.data());
    f.decode_reference(bytes.data(), 1, cols, want.data());
    EXPECT_TRUE(SameFloats(got, want)) << name;
  }
}

}  // namespace
}  // namespace qforge::formats
