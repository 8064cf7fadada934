#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>

#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/core/thread_pool.h"
#include "test_util.h"

namespace qforge {
namespace {

TEST(DType, Bf16RoundTripsEveryBf16Value) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_bf16(f), h) << h;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3*2^-8 is halfway between 1+2^-7 and 1+2^-6: ties to even (1 + 2^-6).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}

TEST(DType, F16RoundTripsEveryF16ValueAgainstFloat64Reference) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const uint32_t exp = (h >> 10) & 31, mant = h & 1023;
    double ref;
    if (exp == 31) {
      ref =
          mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    } else if (exp == 0) {
      ref = std::ldexp(static_cast<double>(mant), -24);
    } else {
      ref = std::ldexp(1.0 + mant / 1024.0, static_cast<int>(exp) - 15);
    }
    if (h & 0x8000) ref = -ref;
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), ref) << h;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
}

TEST(DType, F16RoundsToNearestEvenAndOverflowsToInfinity) {
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + std::ldexp(1.0f, -11))), 1.0f);  // tie -> even
  EXPECT_EQ(f16_to_f32(f32_to_f16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(65520.0f))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -25))), 0.0f);  // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(3.0f, -25))), std::ldexp(1.0f, -23));
}

TEST(ThreadPool, CoversTheRangeExactlyOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(
      hits.size(),
      [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) hits[i]++;
      },
      7);
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, RethrowsWorkerExceptions) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(100,
                                 [](size_t b, size_t, int) {
                                   if (b > 0) fail("boom");
                                 }),
               Error);
  // The pool stays usable afterwards.
  std::atomic<int> n{0};
  pool.parallel_for(10, [&](size_t b, size_t e, int) { n += static_cast<int>(e - b); });
  EXPECT_EQ(n.load(), 10);
}

TEST(SplitRange, GrainAlignedAndComplete) {
  size_t covered = 0;
  for (int i = 0; i < 3; ++i) {
    auto [b, e] = split_range(100, 3, i, 8);
    EXPECT_EQ(b % 8, 0u);
    covered += e - b;
  }
  EXPECT_EQ(covered, 100u);
}

}  // namespace
}  // namespace qforge
