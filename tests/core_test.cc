#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

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

TEST(ThreadPool, ChunksAreGrainAlignedAndCoverTheRangeOnce) {
  ThreadPool pool(2);
  std::mutex m;
  std::vector<std::pair<size_t, size_t>> ranges;
  pool.parallel_for(
      1001,
      [&](size_t b, size_t e, int) {
        std::lock_guard lock(m);
        ranges.emplace_back(b, e);
      },
      8);
  std::sort(ranges.begin(), ranges.end());
  size_t next = 0;
  for (auto [b, e] : ranges) {
    EXPECT_EQ(b, next);
    EXPECT_EQ(b % 8, 0u);
    EXPECT_LT(b, e);
    next = e;
  }
  EXPECT_EQ(next, 1001u);
  EXPECT_GT(ranges.size(), 2u);  // several chunks per thread, so a stalled thread can be covered
}

// A worker that stalls (here: sleeps, as a descheduled thread would) keeps only the chunk it
// holds; the calling thread takes all the others instead of waiting for it.
TEST(ThreadPool, AStalledWorkerDoesNotHoldBackTheOtherChunks) {
  ThreadPool pool(2);
  std::atomic<int> by_worker{0}, total{0};
  pool.parallel_for(64, [&](size_t, size_t, int thread_index) {
    total++;
    if (thread_index != 0) {
      by_worker++;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  EXPECT_EQ(total.load(), 16);  // 2 threads x 8 chunks of 4
  EXPECT_LE(by_worker.load(), 1);
}

TEST(ThreadPool, OnEveryThreadRunsOncePerThread) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(3);
  pool.on_every_thread([&](int thread_index) { seen.at(static_cast<size_t>(thread_index))++; });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace qforge
