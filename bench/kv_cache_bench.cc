// What a quantized KV cache costs a decode step: reading (dequantizing) one KV head's keys and
// values for 1024 cached positions, per format, next to the f32 cache (which is read in place).
// Reported as f32 bytes of keys + values produced per second, one thread.
//   build/release/bench/kv_cache_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "qforge/model/kv_cache.h"

namespace qforge {
namespace {

constexpr int kPositions = 1024, kHeadDim = 128;

ModelConfig one_head() {
  ModelConfig c;
  c.num_layers = c.num_heads = c.num_kv_heads = 1;
  c.head_dim = c.hidden_size = kHeadDim;
  return c;
}

void BM_KvRead(benchmark::State& state, KvCacheFormat format) {
  const ModelConfig c = one_head();
  KVCache cache(c, kPositions + 1, format);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> k(static_cast<size_t>(kPositions + 1) * kHeadDim), v(k.size());
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  cache.store(0, 0, kPositions, k.data(), v.data());
  cache.store(0, kPositions, 1, &k[kPositions * kHeadDim], &v[kPositions * kHeadDim]);  // packs
  std::vector<float> ks(k.size()), vs(v.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.keys(0, 0, kPositions + 1, ks.data()));
    benchmark::DoNotOptimize(cache.values(0, 0, kPositions + 1, vs.data()));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(k.size()) * 4);
  state.counters["cache_bytes"] = static_cast<double>(cache.bytes());
}

using formats::KvType;
BENCHMARK_CAPTURE(BM_KvRead, f32, KvCacheFormat{});
BENCHMARK_CAPTURE(BM_KvRead, int8_token, KvCacheFormat{KvType::Int8, false, false, 64});
BENCHMARK_CAPTURE(BM_KvRead, int8_channel, KvCacheFormat{KvType::Int8, true, true, 64});
BENCHMARK_CAPTURE(BM_KvRead, int4_token, KvCacheFormat{KvType::Int4, false, false, 64});
BENCHMARK_CAPTURE(BM_KvRead, int4_channel, KvCacheFormat{KvType::Int4, true, true, 64});
BENCHMARK_CAPTURE(BM_KvRead, fp8_token, KvCacheFormat{KvType::Fp8E4M3, false, false, 64});

}  // namespace
}  // namespace qforge
