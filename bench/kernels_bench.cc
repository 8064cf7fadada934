// Micro-benchmarks of the forward-pass kernels: GEMV (decode) per weight dtype against the memory
// bandwidth it needs, and tiled GEMM (prefill) against the FMA peak. Run:
//   build/release/bench/kernels_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/formats/format.h"
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

// A packed matrix in `format` (Gaussian weights, RTN-encoded) and its bytes.
struct PackedMatrix {
  std::vector<std::byte> bytes;
  Matrix m;
};
PackedMatrix make_packed(const std::string& format, int64_t rows, int64_t cols) {
  const auto& f = formats::find_format(format);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& v : w) v = nd(rng);
  PackedMatrix p;
  p.bytes = f.encode(w.data(), rows, cols);
  p.m = packed_matrix("bench", f, rows, cols, p.bytes.data());
  return p;
}

// Decode through a packed 4096 x 4096 matrix for 1 or 4 tokens (args: tokens, threads): the
// weights/s to compare with BM_Gemv's bf16 (2 bytes per weight) in the same run.
void BM_GemvPacked(benchmark::State& state, const char* format) {
  const int64_t rows = 4096, cols = 4096, n = state.range(0);
  PackedMatrix t = make_packed(format, rows, cols);
  std::vector<float> x(static_cast<size_t>(n * cols), 0.5f), y(static_cast<size_t>(n * rows));
  ThreadPool pool(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    kernels::matmul(t.m, x.data(), n, y.data(), rows, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.m.nbytes()));
  state.counters["Gweights/s"] = benchmark::Counter(
      static_cast<double>(rows * cols) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
  state.counters["tokens"] = static_cast<double>(n);
}
// clang-format off
BENCHMARK_CAPTURE(BM_GemvPacked, q4_0, "q4_0")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, q4_k, "q4_k")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, q6_k, "q6_k")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, q8_0, "q8_0")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, iq4_xs, "iq4_xs")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, int4_g128, "int4-g128")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, int8_channel, "int8-channel")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, nvfp4, "nvfp4")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, mxfp4, "mxfp4")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, nf4, "nf4")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPacked, fp8_e4m3, "fp8-e4m3")->Args({1, 1})->Args({4, 1})->Args({1, 2})->UseRealTime();
// clang-format on

// The fixed cost of one parallel region: a parallel_for whose chunks do nothing (arg: threads).
// Decode of a small model runs ~5 regions per layer per token, so this bounds what the pool's
// hand-off costs there.
void BM_ForkJoin(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<int> sink(64);
  for (auto _ : state) {
    pool.parallel_for(sink.size(), [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) benchmark::DoNotOptimize(sink[i]);
    });
  }
  state.counters["threads"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_ForkJoin)->Arg(1)->Arg(2)->UseRealTime();

// One token through a 512 x 512 packed matrix (llama-sp-58m's q/o projections): work of a few
// microseconds per region, where the pool's hand-off and the split show (args: threads).
void BM_GemvPackedSmall(benchmark::State& state, const char* format) {
  const int64_t rows = 512, cols = 512;
  PackedMatrix t = make_packed(format, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    kernels::matmul(t.m, x.data(), 1, y.data(), rows, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["threads"] = static_cast<double>(state.range(0));
}
BENCHMARK_CAPTURE(BM_GemvPackedSmall, q4_k, "q4_k")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvPackedSmall, q6_k, "q6_k")->Arg(1)->Arg(2)->UseRealTime();

// Prefill: 512 tokens through a 1536 x 512 matrix (an MLP projection of llama-sp-58m).
void gemm_loop(benchmark::State& state, const Matrix& m) {
  const int64_t n = 512;
  std::vector<float> x(static_cast<size_t>(n * m.cols), 0.25f), y(static_cast<size_t>(n * m.rows));
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    kernels::matmul(m, x.data(), n, y.data(), m.rows, pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m.rows * m.cols * n) *
                                                     static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.counters["threads"] = static_cast<double>(state.range(0));
}
void BM_Gemm(benchmark::State& state, DType dtype) {
  const TestMatrix t = make_matrix(dtype, 1536, 512);
  gemm_loop(state, t.m);
}
BENCHMARK_CAPTURE(BM_Gemm, bf16, DType::BF16)->Arg(1)->Arg(2)->UseRealTime();

void BM_GemmPacked(benchmark::State& state, const char* format) {
  const PackedMatrix t = make_packed(format, 1536, 512);
  gemm_loop(state, t.m);
}
BENCHMARK_CAPTURE(BM_GemmPacked, q4_k, "q4_k")->Arg(1)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemmPacked, int4_g128, "int4-g128")->Arg(1)->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemm, f32, DType::F32)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace qforge
