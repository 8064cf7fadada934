// Micro-benchmarks of the forward-pass kernels: GEMV (decode) per weight dtype against the memory
// bandwidth it needs, and tiled GEMM (prefill) against the FMA peak. Run:
//   build/release/bench/kernels_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/kernels/kernels.h"

namespace qforge {
namespace {

struct TestMatrix {
  std::vector<std::byte> bytes;
  Matrix m;
};

TestMatrix make_matrix(DType dtype, int64_t rows, int64_t cols) {
  TestMatrix t;
  t.bytes.resize(static_cast<size_t>(rows * cols) * dtype_size(dtype));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = nd(rng);
    if (dtype == DType::F32) {
      std::memcpy(&t.bytes[i * 4], &v, 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(&t.bytes[i * 2], &h, 2);
    }
  }
  t.m = Matrix{"bench", dtype, rows, cols, t.bytes.data()};
  return t;
}

// Decode: one token through a 4096 x 4096 matrix (32 MiB of bf16: far beyond the caches).
void BM_Gemv(benchmark::State& state, DType dtype) {
  const int64_t rows = 4096, cols = 4096;
  TestMatrix t = make_matrix(dtype, rows, cols);
  std::vector<float> x(cols, 0.5f), y(rows);
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    kernels::matmul(t.m, x.data(), 1, y.data(), rows, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.m.nbytes()));
  state.counters["threads"] = static_cast<double>(state.range(0));
}
BENCHMARK_CAPTURE(BM_Gemv, bf16, DType::BF16)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemv, f16, DType::F16)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemv, f32, DType::F32)->Arg(1)->Arg(2)->UseRealTime();

// Prefill: 512 tokens through a 1536 x 512 bf16 matrix (an MLP projection of llama-sp-58m).
void BM_Gemm(benchmark::State& state, DType dtype) {
  const int64_t rows = 1536, cols = 512, n = 512;
  TestMatrix t = make_matrix(dtype, rows, cols);
  std::vector<float> x(n * cols, 0.25f), y(n * rows);
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    kernels::matmul(t.m, x.data(), n, y.data(), rows, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * cols * n * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["threads"] = static_cast<double>(state.range(0));
}
BENCHMARK_CAPTURE(BM_Gemm, bf16, DType::BF16)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemm, f32, DType::F32)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace qforge
