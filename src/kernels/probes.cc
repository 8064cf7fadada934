#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/probes.cc"
#include <cstddef>
#include <cstdint>

#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qforge::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 12 independent chains cover FMA latency (4 cycles) x 2 ports with room to spare.
// Returns the number of floating-point operations performed; writes a result to defeat DCE.
double FmaLoop(size_t iterations, float* sink) {
  const hn::ScalableTag<float> df;
  const auto m = hn::Set(df, 0.999999f), a = hn::Set(df, 1e-7f);
  auto v0 = hn::Set(df, 1.0f), v1 = v0, v2 = v0, v3 = v0, v4 = v0, v5 = v0, v6 = v0, v7 = v0,
       v8 = v0, v9 = v0, v10 = v0, v11 = v0;
  for (size_t i = 0; i < iterations; ++i) {
    v0 = hn::MulAdd(v0, m, a);
    v1 = hn::MulAdd(v1, m, a);
    v2 = hn::MulAdd(v2, m, a);
    v3 = hn::MulAdd(v3, m, a);
    v4 = hn::MulAdd(v4, m, a);
    v5 = hn::MulAdd(v5, m, a);
    v6 = hn::MulAdd(v6, m, a);
    v7 = hn::MulAdd(v7, m, a);
    v8 = hn::MulAdd(v8, m, a);
    v9 = hn::MulAdd(v9, m, a);
    v10 = hn::MulAdd(v10, m, a);
    v11 = hn::MulAdd(v11, m, a);
  }
  auto s =
      hn::Add(hn::Add(hn::Add(v0, v1), hn::Add(v2, v3)), hn::Add(hn::Add(v4, v5), hn::Add(v6, v7)));
  s = hn::Add(s, hn::Add(hn::Add(v8, v9), hn::Add(v10, v11)));
  *sink = hn::GetLane(hn::SumOfLanes(df, s));
  return 2.0 * 12.0 * static_cast<double>(hn::Lanes(df)) * static_cast<double>(iterations);
}

// Sums a buffer with several accumulators; memory-bound by construction.
uint64_t ReadSum(const uint64_t* p, size_t n) {
  const hn::ScalableTag<uint64_t> d;
  const size_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, hn::Load(d, p + i));
    a1 = hn::Add(a1, hn::Load(d, p + i + N));
    a2 = hn::Add(a2, hn::Load(d, p + i + 2 * N));
    a3 = hn::Add(a3, hn::Load(d, p + i + 3 * N));
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

}  // namespace qforge::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <atomic>
#include <chrono>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "qforge/kernels/probes.h"

namespace qforge::kernels {

HWY_EXPORT(FmaLoop);
HWY_EXPORT(ReadSum);

double measure_fma_peak(ThreadPool& pool, double seconds) {
  // Calibrate the iteration count on one thread, then run all threads at once.
  float sink = 0;
  size_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    HWY_DYNAMIC_DISPATCH(FmaLoop)(iters, &sink);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 4) {
      iters = static_cast<size_t>(iters * (seconds / dt));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<double> flops{0};
    const auto t0 = std::chrono::steady_clock::now();
    pool.on_every_thread([&](int) {
      float s = 0;
      flops.fetch_add(HWY_DYNAMIC_DISPATCH(FmaLoop)(iters, &s));
      if (s == 12345.0f) std::abort();  // keep the result alive
    });
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops.load() / dt);
  }
  return best;
}

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  auto buf = hwy::AllocateAligned<uint64_t>(n);
  // First touch from the threads that will read (pages land where they are used).
  pool.parallel_for(
      n,
      [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) buf[i] = i;
      },
      4096);
  double best = 0;
  std::atomic<uint64_t> sink{0};
  for (int rep = 0; rep < repeats; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(
        n,
        [&](size_t b, size_t e, int) {
          sink += HWY_DYNAMIC_DISPATCH(ReadSum)(buf.get() + b, e - b);
        },
        4096);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / dt);
  }
  if (sink.load() == 42) std::abort();
  return best;
}

}  // namespace qforge::kernels
#endif  // HWY_ONCE
