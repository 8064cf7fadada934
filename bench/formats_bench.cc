// Decode and encode throughput of every registered format, one thread, next to a plain memcpy of
// the same number of output floats measured in the same run. Reported as output bytes/s (f32).
//   build/release/bench/formats_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "qforge/formats/format.h"

namespace qforge::formats {
namespace {

constexpr int64_t kRows = 256, kCols = 4096;  // 1M weights: 4 MiB of f32 output (L2/L3-sized)

const std::vector<float>& weights() {
  static const std::vector<float> w = [] {
    std::vector<float> v(kRows * kCols);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 0.02f);
    for (auto& x : v) x = nd(rng);
    return v;
  }();
  return w;
}

void BM_Memcpy(benchmark::State& state) {
  std::vector<float> src(weights()), dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * 4);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * 4);
}
BENCHMARK(BM_Memcpy);

void BM_Decode(benchmark::State& state, std::string name) {
  const Format& f = find_format(name);
  const auto bytes = f.encode(weights().data(), kRows, kCols);
  std::vector<float> out(kRows * kCols);
  for (auto _ : state) {
    f.decode(bytes.data(), kRows, kCols, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * 4);
  state.counters["bpw"] = f.info().bits_per_weight;
}

void BM_Encode(benchmark::State& state, std::string name) {
  const Format& f = find_format(name);
  for (auto _ : state) {
    auto bytes = f.encode(weights().data(), kRows, kCols);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * 4);
}

const bool registered = [] {
  for (const Format* f : all_formats()) {
    benchmark::RegisterBenchmark(("Decode/" + f->name()).c_str(), BM_Decode, f->name());
    benchmark::RegisterBenchmark(("Encode/" + f->name()).c_str(), BM_Encode, f->name())
        ->Iterations(2);
  }
  return true;
}();

}  // namespace
}  // namespace qforge::formats
