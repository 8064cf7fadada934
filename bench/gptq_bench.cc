// GPTQ's parts on qwen-bpe-31m's linear shapes (int4-g64): the factor of H, the column loop on one
// thread and with tiles of rows on a 2-thread pool, RTN and the layer objective. Random weights
// and a random SPD H (the time does not depend on the values).
//   build/release/bench/gptq_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "qforge/core/thread_pool.h"
#include "qforge/formats/format.h"
#include "qforge/kernels/kernels.h"
#include "qforge/quant/format_quantizer.h"
#include "qforge/quant/gptq.h"

namespace qforge {
namespace {

struct Problem {
  int64_t rows, cols;
  std::vector<float> w;
  std::vector<double> h;
};

// H = XᵀX / n + 0.01 I for Gaussian X [2 cols, cols]: well conditioned, like a calibration H.
Problem make_problem(int64_t rows, int64_t cols) {
  kernels::use_single_threaded_blas();  // as qforge runs: threads come from the pool only
  Problem p{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols)),
            std::vector<double>(static_cast<size_t>(cols * cols))};
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (float& v : p.w) v = nd(rng);
  const int64_t n = 2 * cols;
  std::vector<double> x(static_cast<size_t>(n * cols));
  std::normal_distribution<double> xd(0.0, 1.0);
  for (double& v : x) v = xd(rng);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(cols), static_cast<int>(n),
              1.0 / static_cast<double>(n), x.data(), static_cast<int>(cols), 0.0, p.h.data(),
              static_cast<int>(cols));
  for (int64_t i = 0; i < cols; ++i) {
    p.h[i * cols + i] += 0.01;
    for (int64_t j = 0; j < i; ++j) p.h[i * cols + j] = p.h[j * cols + i];
  }
  return p;
}

const formats::Format& int4_g64() {
  return formats::find_format("int4-g64");
}

void BM_GptqFactor(benchmark::State& state) {
  const Problem p = make_problem(1, state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(gptq_factor(p.h, p.cols).u.data());
}
BENCHMARK(BM_GptqFactor)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond);

// args: rows, cols, threads (1: no pool)
void BM_GptqColumns(benchmark::State& state) {
  const Problem p = make_problem(state.range(0), state.range(1));
  const GptqFactor f = gptq_factor(p.h, p.cols);
  ThreadPool pool(static_cast<int>(state.range(2)));
  for (auto _ : state) {
    auto q = quantizer_maker(int4_g64())(p.w.data(), p.rows, p.cols);
    GptqResult r = gptq_quantize(p.w.data(), p.rows, p.h, f, *q, pool.size() > 1 ? &pool : nullptr);
    benchmark::DoNotOptimize(r.q.data());
  }
}
BENCHMARK(BM_GptqColumns)
    ->ArgsProduct({{576}, {576}, {1, 2}})
    ->Args({1536, 576, 1})
    ->Args({1536, 576, 2})
    ->Args({576, 1536, 1})
    ->Args({576, 1536, 2})
    ->Unit(benchmark::kMillisecond);

void BM_Rtn(benchmark::State& state) {
  const Problem p = make_problem(state.range(0), state.range(1));
  std::vector<double> diag(static_cast<size_t>(p.cols));
  for (int64_t i = 0; i < p.cols; ++i) diag[i] = p.h[i * p.cols + i];
  ThreadPool pool(static_cast<int>(state.range(2)));
  for (auto _ : state) {
    auto q = quantizer_maker(int4_g64())(p.w.data(), p.rows, p.cols);
    auto v = rtn_quantize(p.w.data(), p.rows, p.cols, *q, diag.data(),
                          pool.size() > 1 ? &pool : nullptr);
    benchmark::DoNotOptimize(v.data());
  }
}
BENCHMARK(BM_Rtn)->Args({576, 1536, 1})->Args({576, 1536, 2})->Unit(benchmark::kMillisecond);

void BM_LayerObjective(benchmark::State& state) {
  const Problem p = make_problem(state.range(0), state.range(1));
  ThreadPool pool(static_cast<int>(state.range(2)));
  const std::vector<float> q(p.w.size(), 0.f);
  for (auto _ : state)
    benchmark::DoNotOptimize(layer_objective(p.w.data(), q.data(), p.rows, p.cols, p.h,
                                             pool.size() > 1 ? &pool : nullptr));
}
BENCHMARK(BM_LayerObjective)
    ->Args({576, 1536, 1})
    ->Args({576, 1536, 2})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qforge
