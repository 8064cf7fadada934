// Every format's decode() (SIMD where it has a fast path) equals its scalar decode_reference()
// bit for bit, on every Highway target compiled into this binary and supported by this CPU
// (AVX-512 16 lanes, AVX2 8, SSE4 4, ...): the table lookups take a different route per width.
// Inputs: real encodings of Gaussian weights at ordinary, tiny and huge magnitudes (subnormal and
// near-overflow scales), arbitrary bytes (every code, odd scales, NaN and Inf scale patterns),
// all-zero and all-one bytes, for shapes with and without a vector-width tail. Every input ends
// at an unreadable page, so a decoder that reads past the tensor crashes the test.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

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

// A copy of `bytes` whose last byte is followed by an inaccessible page.
class GuardedBytes {
 public:
  explicit GuardedBytes(const std::vector<std::byte>& bytes) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_ = (bytes.size() + page - 1) / page * page + page;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<std::byte*>(m);
    EXPECT_EQ(mprotect(base_ + size_ - page, page, PROT_NONE), 0);
    data_ = base_ + size_ - page - bytes.size();
    std::memcpy(data_, bytes.data(), bytes.size());
  }
  ~GuardedBytes() { munmap(base_, size_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  const std::byte* data() const { return data_; }

 private:
  std::byte* base_ = nullptr;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

void check_format(const Format& f, const std::string& where) {
  std::mt19937 rng(7);
  for (const int64_t cols : row_lengths(f)) {
    const int64_t rows = 3;
    std::vector<float> w(static_cast<size_t>(rows * cols));
    std::normal_distribution<float> nd(0.0f, 0.05f);
    for (auto& x : w) x = nd(rng);
    w[5] = 0.9f;  // an outlier so some groups use their full range
    struct Input {
      std::string what;
      std::vector<std::byte> bytes;
    };
    std::vector<Input> inputs = {{"encoded", f.encode(w.data(), rows, cols)}};
    for (const float magnitude : {1e-6f, 1e4f}) {
      std::vector<float> scaled(w);
      for (auto& x : scaled) x *= magnitude;
      inputs.push_back(
          {"encoded x " + std::to_string(magnitude), f.encode(scaled.data(), rows, cols)});
    }
    const size_t n = f.encoded_bytes(rows, cols);
    std::vector<std::byte> noise(n);
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : noise) b = static_cast<std::byte>(byte(rng));
    inputs.push_back({"random bytes", noise});
    inputs.push_back({"zero bytes", std::vector<std::byte>(n, std::byte{0})});
    inputs.push_back({"0xFF bytes", std::vector<std::byte>(n, std::byte{0xFF})});
    for (const Input& input : inputs) {
      ASSERT_EQ(input.bytes.size(), n) << f.name();
      const GuardedBytes guarded(input.bytes);
      std::vector<float> got(w.size(), -1.0f), want(w.size(), -2.0f);
      f.decode(guarded.data(), rows, cols, got.data());
      f.decode_reference(guarded.data(), rows, cols, want.data());
      EXPECT_TRUE(SameFloats(got, want))
          << f.name() << " " << where << " cols=" << cols << " " << input.what;
    }
  }
}

// Formats outside the canonical list that take other routes through the decoders: every packed
// code width (2, 3, 5, 6, 7 bits), groups smaller than a vector, and per-row / per-tensor scales
// with ragged row lengths (a group that ends mid-byte and mid-vector).
const char* const kExtraFormats[] = {"int2-channel",      "int3-tensor",     "int5-asym-channel",
                                     "int6-channel",      "int7-g64",        "int7-asym-tensor",
                                     "int3-g8",           "int5-g16-bf16",   "int2-asym-g32-fp32",
                                     "fp6-e3m2-channel",  "fp6-e2m3-tensor", "fp6-e3m2-g8",
                                     "int4-asym-channel", "fp8-e5m2-g16"};

TEST(SimdDecode, EqualsTheScalarReferenceOnEveryTarget) {
  const auto targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (const int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Format* f : all_formats()) check_format(*f, hwy::TargetName(target));
    for (const char* name : kExtraFormats) check_format(find_format(name), hwy::TargetName(target));
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

// Every FP6 code (all 64, in order, packed LSB first) through the SIMD path equals the minifloat
// definition, including the subnormals and -0, on every target.
TEST(SimdDecode, EveryFp6CodeDecodesExactly) {
  const auto targets = hwy::SupportedAndGeneratedTargets();
  for (const int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    for (const char* name : {"fp6-e3m2-tensor", "fp6-e2m3-tensor"}) {
      const Format& f = find_format(name);
      const int64_t cols = 64;
      std::vector<float> ones(cols, 1.0f);
      auto bytes = f.encode(ones.data(), 1, cols);  // fixes a scale; codes overwritten below
      const size_t header = bytes.size() - cols * 6 / 8;
      std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end(), std::byte{0});
      for (int c = 0; c < cols; ++c)
        for (int k = 0; k < 6; ++k)
          if (c >> k & 1) bytes[header + (c * 6 + k) / 8] |= std::byte{1} << ((c * 6 + k) % 8);
      std::vector<float> got(cols), want(cols);
      f.decode(bytes.data(), 1, cols, got.data());
      f.decode_reference(bytes.data(), 1, cols, want.data());
      EXPECT_TRUE(SameFloats(got, want)) << name << " " << hwy::TargetName(target);
      EXPECT_TRUE(std::signbit(got[32]) && got[32] == 0.0f) << name << ": code 0x20 is -0";
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace
}  // namespace qforge::formats
